"""The alerts page: rules and the history of the alerts they raised (admins and technicians);
admins add, test and remove rules."""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from wtforms import SelectField, StringField
from wtforms.fields.choices import SelectChoice

from .. import audit
from ..alerts.rules import KIND_LABELS, KINDS, PARAMETERS, RuleError, all_rules, delete_rule, parse_rule, save_rule
from ..alerts.service import history, test_rule
from ..database import engine_for
from ..app_state import settings
from ..module_settings import load
from ..roles import ADMIN, TECHNICIAN
from .blueprint import blueprint
from .access import current_user, menu_entry, roles_required
from .forms import CSRFForm

PARAMETER_LABELS = {"threshold_mbps": "Threshold (Mbit/s)", "minutes": "For (minutes)",
                    "direction": "Direction (in, out, both)", "account": "Account (empty: any)",
                    "exporter": "Exporter address", "ifindex": "Interface index (SNMP ifIndex)",
                    "finding_kind": "Finding kind (empty: any)", "min_score": "Lowest score",
                    "max_skew_s": "Largest clock offset (s)"}


class RuleForm(CSRFForm):
    name = StringField("Name")
    kind = SelectField("Kind", choices=[SelectChoice(k, KIND_LABELS[k]) for k in KINDS])
    cooldown_minutes = StringField("Cool-down (minutes)", default="60")
    email = StringField("E-mail recipients")
    webhook = StringField("Webhook URL")


for _parameter in PARAMETERS:
    setattr(RuleForm, _parameter, StringField(PARAMETER_LABELS[_parameter]))


class ActionForm(CSRFForm):
    """The CSRF token of the per-rule buttons."""


def _engine():
    return engine_for(settings().DATABASE_URL)


@blueprint.route("/alerts", methods=["GET", "POST"])
@menu_entry("Alerts", ADMIN, TECHNICIAN)
@roles_required(ADMIN, TECHNICIAN)
def alerts():
    user = current_user()
    form = RuleForm.from_request()
    status = 200
    if request.method == "POST":
        if user.role != ADMIN:
            abort(403)
        if form.validate():
            try:
                rule = parse_rule({name: form[name].data for name in
                                   ("name", "kind", "cooldown_minutes", "email", "webhook", *KINDS[form.kind.data])})
            except RuleError as exc:
                for name, message in exc.errors.items():
                    form[name].errors = [*form[name].errors, message]
            else:
                with _engine().begin() as conn:
                    save_rule(conn, rule)
                    audit.record(conn, actor=user.name, role=user.role, action="alerts.rule",
                                 criteria={"name": rule.name, "kind": rule.kind, "params": rule.params})
                flash(f"Rule {rule.name} saved.", "success")
                return redirect(url_for(".alerts"))
        status = 400
    with _engine().connect() as conn:
        rules = all_rules(conn)
        recent = history(conn)
        zone = load(conn).zone
    return render_template("ispflow/alerts.html", form=form, rules=rules, recent=recent, zone=zone,
                           actions=ActionForm.from_request(), parameters={k: [PARAMETER_LABELS[p] for p in v] for k, v in KINDS.items()},
                           parameter_labels=PARAMETER_LABELS), status


def _posted_rule(rule_id: int):
    """The rule a button was pressed for: 400 without the form's CSRF token, 404 if unknown."""
    if not ActionForm.from_request().validate():
        abort(400)
    with _engine().connect() as conn:
        rule = next((r for r in all_rules(conn) if r.id == rule_id), None)
    if rule is None:
        abort(404)
    return rule


@blueprint.route("/alerts/<int:rule_id>/test", methods=["POST"])
@roles_required(ADMIN)
def alert_rule_test(rule_id):
    rule = _posted_rule(rule_id)
    outcome = test_rule(settings(), rule)
    failed = any(v.startswith("failed") for v in outcome.values())
    flash(f"Test of {rule.name}: " + "; ".join(f"{k} {v}" for k, v in outcome.items()),
          "error" if failed else "success")
    return redirect(url_for(".alerts"))


@blueprint.route("/alerts/<int:rule_id>/delete", methods=["POST"])
@roles_required(ADMIN)
def alert_rule_delete(rule_id):
    rule = _posted_rule(rule_id)
    user = current_user()
    with _engine().begin() as conn:
        delete_rule(conn, rule_id)
        audit.record(conn, actor=user.name, role=user.role, action="alerts.rule.delete", criteria={"name": rule.name})
    flash(f"Rule {rule.name} removed with its alert history.", "success")
    return redirect(url_for(".alerts"))
