"""ispflow's pages: one blueprint, one module per feature, each view guarded by role."""
from . import access, headers, overview, subscribers, switch  # noqa: F401  (views register on the blueprint on import)
from . import analytics  # noqa: F401
from . import alerts, audit, exporters, metrics, routers, search, security, settings, status, storage  # noqa: F401
from .blueprint import blueprint

__all__ = ["blueprint"]
