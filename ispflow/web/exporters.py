"""Trusting and untrusting exporters from the status page (admins; a POST form, audited)."""
from __future__ import annotations

from flask import flash, redirect, url_for
from wtforms import HiddenField
from wtforms.validators import AnyOf, InputRequired

from ..collector import trust
from ..app_state import session
from ..roles import ADMIN
from .blueprint import blueprint
from .access import current_user, roles_required
from .forms import CSRFForm


class TrustForm(CSRFForm):
    address = HiddenField(validators=[InputRequired()])
    trusted = HiddenField(validators=[AnyOf(["yes", "no"])])


@blueprint.route("/status/exporters", methods=["POST"])
@roles_required(ADMIN)
def exporter_trust():
    form = TrustForm.from_request()
    if not form.validate():
        flash("The request was refused (expired form or unknown action); nothing changed.", "error")
        return redirect(url_for(".status_page"))
    try:
        address = trust.canonical(form.address.data)
    except ValueError:
        flash(f"{form.address.data!r} is not an IP address; nothing changed.", "error")
        return redirect(url_for(".status_page"))
    db, user = session(), current_user()
    if form.trusted.data == "yes":
        changed = trust.trust(db, address, actor=user.name, role=user.role)
        message = f"{address} is trusted: its flows are stored from now on." if changed else f"{address} was trusted already."
    else:
        changed = trust.untrust(db, address, actor=user.name, role=user.role)
        message = f"{address} is no longer trusted: its packets are dropped." if changed else f"{address} was not trusted."
        router = trust.provisioned_router(db, address)
        if router:
            message += f" It is the provisioned router {router!r}, whose flows are stored regardless."
    db.commit()
    flash(message, "success")
    return redirect(url_for(".status_page"))


def exporter_trust(with_forms: bool) -> dict:
    """Per exporter address: (its trust row, a trust/untrust form or None), for the status page."""
    return {row["address"]: (row, TrustForm(formdata=None, address=row["address"],
                                            trusted="no" if row["trusted"] else "yes") if with_forms else None)
            for row in trust.exporters(session())}
