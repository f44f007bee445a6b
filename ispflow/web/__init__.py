"""ispflow's pages: one blueprint, one module per feature, each view guarded by role."""
from . import access, overview, subscribers  # noqa: F401  (views register on the blueprint on import)
from . import audit, exporters, routers, search, settings, status, storage  # noqa: F401
from .blueprint import blueprint

__all__ = ["blueprint"]
