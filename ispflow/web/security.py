"""The security view (findings of a period) and its thresholds page.

Admins and technicians read the findings and their evidence; compliance officers also get a
link per finding to the audited flow search, filled in with the finding's addresses, port and
time, where they give a case reference before any flow record is shown.
"""
from __future__ import annotations

from dataclasses import asdict, fields
from datetime import datetime, timedelta, timezone

from flask import flash, redirect, render_template, request, url_for
from wtforms import IntegerField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired

from .. import audit
from ..database import engine_for
from ..app_state import settings
from ..geoip import geoip
from ..module_settings import load
from ..roles import ADMIN, COMPLIANCE, TECHNICIAN
from ..search.criteria import parse_moment
from ..security import settings as security_settings
from ..security.detect import KIND_LABELS, KINDS
from ..security.findings import coverage, grouped_findings, search_link
from .blueprint import blueprint
from .access import current_user, menu_entry, roles_required
from .forms import CSRFForm, QueryForm, validated_settings


class PeriodForm(QueryForm):
    date_from = StringField("From (ISP time)")
    date_to = StringField("To (ISP time)")
    kind = SelectField("Kind", choices=[SelectChoice("", "all kinds")] + [SelectChoice(k, KIND_LABELS[k]) for k in KINDS],
                       default="")


def _engine():
    return engine_for(settings().DATABASE_URL)


@blueprint.route("/security")
@menu_entry("Security", ADMIN, TECHNICIAN, COMPLIANCE)
@roles_required(ADMIN, TECHNICIAN, COMPLIANCE)
def security():
    form = PeriodForm.from_request()
    engine = _engine()
    with engine.connect() as conn:
        zone = load(conn).zone
        now = datetime.now(timezone.utc)
        if not form.date_from.data:
            form.date_from.data = (now - timedelta(days=1)).astimezone(zone).strftime("%Y-%m-%d %H:00")
        if not form.date_to.data:
            form.date_to.data = now.astimezone(zone).strftime("%Y-%m-%d %H:%M")
        try:
            start = parse_moment(form.date_from.data, zone, "From")
            end = parse_moment(form.date_to.data, zone, "To", end_of_day=True)
            if end <= start:
                raise ValueError("'To' must be later than 'From'.")
        except ValueError as exc:
            form.date_to.errors = [str(exc)]
            return render_template("ispflow/security.html", form=form, rows=[], geo_status=geoip(settings()).status(),
                                   analysed=(0, 0), kind_labels=KIND_LABELS), 400
        kind = form.kind.data if form.kind.data in KINDS else None
        rows = grouped_findings(conn, start, end, kind)
        analysed = coverage(conn, start, end, now)
    geo = geoip(settings())
    may_search = current_user().role == COMPLIANCE
    shown = [{"row": r, "subject_origin": geo.lookup(r.subject).label(),
              "peer_origin": geo.lookup(r.peer).label() if r.peer is not None else "",
              "first_seen": r.first_seen.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S"),
              "last_seen": r.last_seen.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S"),
              "flows_url": url_for(".search", **search_link(r)) if may_search else None} for r in rows]
    return render_template("ispflow/security.html", form=form, rows=shown, geo_status=geo.status(),
                           analysed=analysed, kind_labels=KIND_LABELS)


def _thresholds_form_class():
    """A form with one field per threshold of ``SecuritySettings``."""
    attributes = {}
    for f in fields(security_settings.SecuritySettings):
        label = f.name.replace("_", " ").capitalize()
        if isinstance(f.default, tuple):
            attributes[f.name] = StringField(label + " (comma-separated)")
        else:
            low, high = security_settings.LIMITS[f.name]
            attributes[f.name] = IntegerField(label, validators=[InputRequired(f"A whole number from {low} to {high}.")],
                                              render_kw={"min": low, "max": high})
    return type("ThresholdsForm", (CSRFForm,), attributes)


ThresholdsForm = _thresholds_form_class()


def _entered(form) -> security_settings.SecuritySettings | None:
    """The thresholds entered, each bad field explained next to it; None if any is bad."""
    values = {}
    for f in fields(security_settings.SecuritySettings):
        data = form[f.name].data
        if isinstance(f.default, tuple):
            data = tuple(p for p in (data or "").replace(",", " ").split() if p)
        values[f.name] = data
    return validated_settings(form, security_settings.SecuritySettings, values)


@blueprint.route("/security/settings", methods=["GET", "POST"])
@roles_required(ADMIN)
def security_settings_page():
    engine = _engine()
    with engine.connect() as conn:
        current = security_settings.load(conn)
    data = {k: ", ".join(map(str, v)) if isinstance(v, tuple) else v for k, v in asdict(current).items()}
    form = ThresholdsForm.from_request(data=data)
    if request.method == "POST":
        valid = form.validate()
        new = None if form.csrf_token.errors else _entered(form)
        if valid and new is not None:
            changed = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(new).items()
                       if asdict(current)[k] != v}
            with engine.begin() as conn:
                security_settings.save(conn, new)
                if changed:
                    user = current_user()
                    audit.record(conn, actor=user.name, role=user.role, action="settings.security", criteria=changed)
            flash("Thresholds saved; they apply to hours analysed from now on." if changed else "Nothing changed.",
                  "success")
            return redirect(url_for(".security_settings_page"))
        return render_template("ispflow/security_settings.html", form=form), 400
    return render_template("ispflow/security_settings.html", form=form)
