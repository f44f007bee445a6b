"""The status page (admins, technicians) and the banner every page shows while NetFlow is not collecting."""
from __future__ import annotations

from flask import current_app, g, render_template

from ..extension import settings
from ..jobs import PERIODIC_JOBS
from ..roles import ADMIN, STAFF, TECHNICIAN
from ..status import EXPORT_FORMATS, cached_status, current_status
from . import blueprint
from .access import current_user, menu_entry, module_enabled, roles_required
from .exporters import exporter_trust


@blueprint.route("/status")
@menu_entry("Status", ADMIN, TECHNICIAN)
@roles_required(ADMIN, TECHNICIAN)
def status_page():
    status = current_status(settings())
    trust = exporter_trust(with_forms=current_user().role == ADMIN)
    return render_template("ispflow/status.html", status=status, periodic_jobs=PERIODIC_JOBS, trust=trust,
                           export_formats=EXPORT_FORMATS)


@blueprint.app_context_processor
def status_banner():
    """``ispflow_banner()``: the reason NetFlow is not collecting, once per page, for staff."""

    def banner() -> str | None:
        if g.get("ispflow_banner_shown") or "ispflow" not in current_app.extensions:
            return None
        user = current_user()
        if user is None or user.role not in STAFF or not module_enabled():
            return None  # switched off, the module raises no alarm (the status may be cached)
        g.ispflow_banner_shown = True
        return cached_status(settings()).collecting_problem

    return {"ispflow_banner": banner}
