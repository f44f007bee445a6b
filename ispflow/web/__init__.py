"""ispflow's pages: one blueprint, one module per feature, each view guarded by role."""
from flask import Blueprint

from ..database import package_path

# Static files (the pages' scripts and the charting library npm installed) are served by the
# blueprint itself under <prefix>/static: the panel may have no internet, so no CDN.
blueprint = Blueprint("ispflow", __name__, template_folder=str(package_path("ispflow.templates")),
                      static_folder=str(package_path("ispflow.static")), static_url_path="/static")

# Views register on the blueprint when their module is imported.
from . import access, headers, overview, subscribers, switch  # noqa: E402,F401
from . import alerts, audit, exporters, metrics, routers, search, security, settings, status, storage  # noqa: E402,F401
