"""The module settings page (admins): module on/off, retention periods, addresses, time zone."""
from __future__ import annotations

from dataclasses import asdict, fields

from flask import flash, redirect, render_template, request, url_for
from wtforms import BooleanField, IntegerField, StringField, TextAreaField
from wtforms.validators import InputRequired

from .. import audit, module_settings
from ..extension import session
from ..roles import ADMIN
from ..status import forget_cached
from . import blueprint
from .access import current_user, menu_entry, roles_required
from .forms import CSRFForm, validated_settings

MONTHS = "a whole number of months from 1 to 120"
MONTH_INPUT = {"min": 1, "max": 120}


class SettingsForm(CSRFForm):
    enabled = BooleanField("NetFlow module enabled")
    retention_flows_months = IntegerField("Keep flow records (months)",
                                          validators=[InputRequired(MONTHS)], render_kw=MONTH_INPUT)
    retention_nat_months = IntegerField("Keep NAT translation records (months)",
                                        validators=[InputRequired(MONTHS)], render_kw=MONTH_INPUT)
    retention_rollups_months = IntegerField("Keep traffic roll-ups (months)",
                                            validators=[InputRequired(MONTHS)], render_kw=MONTH_INPUT)
    retention_audit_months = IntegerField("Keep the audit log (months)",
                                          validators=[InputRequired(MONTHS)], render_kw=MONTH_INPUT)
    own_prefixes = TextAreaField("The ISP's own address prefixes (one CIDR prefix per line)")
    collector_listen = StringField("Collector listens on (HOST:PORT)")
    export_target = StringField("Routers export NetFlow to (HOST:PORT)")
    timezone = StringField("Time zone for display (e.g. Europe/Prague)", validators=[InputRequired()])

    def entered_settings(self) -> module_settings.ModuleSettings | None:
        """The settings entered, each bad field explained next to it; None if any is bad."""
        values = {}
        for f in fields(module_settings.ModuleSettings):
            data = self[f.name].data
            if f.name == "own_prefixes":
                data = tuple(p for p in (data or "").replace(",", "\n").split() if p)
            elif isinstance(data, str):
                data = data.strip()
            values[f.name] = data
        return validated_settings(self, module_settings.ModuleSettings, values)


def _form_data(current: module_settings.ModuleSettings) -> dict:
    data = asdict(current)
    data["own_prefixes"] = "\n".join(current.own_prefixes)
    return data


@blueprint.route("/settings", methods=["GET", "POST"])
@menu_entry("Settings", ADMIN)
@roles_required(ADMIN)
def module_settings_page():
    db = session()
    current = module_settings.load(db)
    form = SettingsForm.from_request(data=_form_data(current))
    if request.method == "POST":
        valid = form.validate()  # the CSRF token and the field types
        new = None if form.csrf_token.errors else form.entered_settings()
        if valid and new is not None:
            _save(db, current, new)
            return redirect(url_for(".module_settings_page"))
    return render_template("ispflow/settings.html", form=form)


def _save(db, current, new) -> None:
    changed = {k: v for k, v in asdict(new).items() if asdict(current)[k] != v}
    module_settings.save(db, new)
    user = current_user()
    if "enabled" in changed:  # switching the module on or off is an entry of its own
        audit.record(db, actor=user.name, role=user.role,
                     action="module-enabled" if changed.pop("enabled") else "module-disabled")
    if changed:  # who changed a retention period, and to what, belongs in the audit trail
        audit.record(db, actor=user.name, role=user.role, action="settings",
                     criteria={k: list(v) if isinstance(v, tuple) else v for k, v in changed.items()})
    db.commit()
    forget_cached()
    flash("Settings saved." if current != new else "Nothing changed.", "success")
