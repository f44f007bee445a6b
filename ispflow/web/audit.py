"""The audit log for admins: who searched, looked up or exported what, and whether the chain holds.

Verification checks the chain, where the log starts, and the anchors kept outside the database
(checkpoints under STATE_DIR, export manifests under EXPORT_DIR), and says if the role the panel
connects as could itself remove entries.
"""
from __future__ import annotations

import sqlalchemy as sa
from flask import render_template, request

from .. import audit
from ..app_state import engine, settings
from ..module_settings import load
from ..roles import ADMIN
from .blueprint import blueprint
from .access import menu_entry, roles_required
from .forms import CSRFForm

PAGE_SIZE = 100


class VerifyForm(CSRFForm):
    """Verification changes nothing, but reading the whole log is heavy: not for cross-site links."""


@blueprint.route("/audit", methods=["GET", "POST"])
@menu_entry("Audit log", ADMIN)
@roles_required(ADMIN)
def audit_log():
    form = VerifyForm.from_request()
    before = request.args.get("before", type=int)
    with engine().connect() as conn:
        verification = warning = None
        if form.submitted_and_valid():
            verification = audit.verify(conn, audit.anchors_of(settings()), key=audit.audit_key(settings()))
            warning = audit.unprotected(conn)
        zone = load(conn).zone
        entries = conn.execute(
            sa.text("select * from ispflow.audit_log where (cast(:before as bigint) is null or id < :before) "
                    "order by id desc limit :limit"),
            {"before": before, "limit": PAGE_SIZE + 1},
        ).all()
    more = len(entries) > PAGE_SIZE
    entries = entries[:PAGE_SIZE]
    return render_template("ispflow/audit.html", form=form, verification=verification, warning=warning,
                           entries=entries, next_before=entries[-1].id if more else None, zone=zone)
