"""ispflow's pages: one blueprint, one module per feature, each view guarded by role."""
from flask import Blueprint

from ..database import package_path

blueprint = Blueprint("ispflow", __name__, template_folder=str(package_path("ispflow.templates")))

# Views register on the blueprint when their module is imported.
from . import access, overview, subscribers, switch  # noqa: E402,F401
from . import alerts, audit, exporters, metrics, routers, search, security, settings, status, storage  # noqa: E402,F401
