"""Router pages: list, add/edit, and a router's page with one-click Provision / Check / Remove.

The buttons enqueue rq jobs; the page polls a small JSON view for the job's progress and log.
Passwords go one way only: into the encrypted column. Forms never show them back.
"""
from __future__ import annotations

import sqlalchemy as sa
from flask import abort, flash, jsonify, redirect, render_template, request, url_for
from wtforms import BooleanField, FloatField, IntegerField, PasswordField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, NumberRange, Optional

from ..config import ConfigError
from ..extension import session, settings
from ..roles import ADMIN, TECHNICIAN
from ..routers.inventory import add_router, collector_of, preview, repin, update_router
from ..routers.runs import JobRefused
from ..routers.status import router_statuses
from ..routers.validation import InvalidRouter
from ..routers.base import driver_for, fingerprint, vendors
from ..routers.jobs import enqueue
from ..routers.models import Router, RouterJob
from . import blueprint
from .access import current_user, menu_entry, roles_required
from .forms import CSRFForm

ROUTER_ROLES = (ADMIN, TECHNICIAN)
FIELDS = ("name", "vendor", "host", "port", "username", "use_tls", "interfaces", "netflow_version",
          "collector", "source_interface", "timeout_s")


class RouterForm(CSRFForm):
    name = StringField("Name", validators=[InputRequired("Give the router a name.")])
    vendor = SelectField("Vendor")
    host = StringField("Management address (IP or host name)", validators=[InputRequired("Enter the router's address.")])
    port = IntegerField("API / SSH port (empty: 8728, 8729 with API-SSL, 22 for SSH)",
                        validators=[Optional(), NumberRange(1, 65535, "A port is a number from 1 to 65535.")])
    username = StringField("Username", validators=[InputRequired("Enter the username ispflow logs in with.")])
    password = PasswordField("Password")  # never rendered with a value
    use_tls = BooleanField("MikroTik: use API-SSL")
    interfaces = StringField("Interfaces to watch (comma-separated; 'all' on MikroTik)", default="all")
    netflow_version = SelectField("Export format", choices=[SelectChoice("9", "NetFlow v9"), SelectChoice("5", "NetFlow v5"),
                                           SelectChoice("ipfix", "IPFIX")],
                                  default="9")
    collector = StringField("Collector HOST:PORT (empty: the configured export target)")
    source_interface = StringField("Cisco: source interface of the export (optional)")
    timeout_s = FloatField("Timeout (seconds)", default=15.0,
                           validators=[InputRequired("Enter a timeout in seconds."),
                                       NumberRange(0.1, 300, "A timeout is from 0.1 to 300 seconds.")])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.vendor.choices = [SelectChoice(v, driver_for(v).label) for v in vendors()]

    def values(self) -> dict:
        return {name: getattr(self, name).data for name in FIELDS}

    def explain(self, exc: InvalidRouter) -> None:
        field = getattr(self, exc.field, None)
        if field is None:
            flash(str(exc), "error")
        else:
            field.errors = list(field.errors) + [str(exc)]


def _router_or_404(router_id: int) -> Router:
    router = session().get(Router, router_id)
    if router is None:
        abort(404)
    return router


@blueprint.route("/routers")
@menu_entry("Routers", *ROUTER_ROLES)
@roles_required(*ROUTER_ROLES)
def routers():
    rows = router_statuses(session())
    return render_template("ispflow/routers.html", rows=rows, export_target=settings().EXPORT_TARGET)


@blueprint.route("/routers/new", methods=["GET", "POST"])
@roles_required(*ROUTER_ROLES)
def router_new():
    form = RouterForm.from_request()
    if form.submitted_and_valid():
        user = current_user()
        router = _saved(form, lambda db: add_router(db, settings(), password=form.password.data or "",
                                                    actor=user.name, role=user.role, **form.values()))
        if router is not None:
            flash(f"Added router {router.name}. Check the commands below, then provision it.", "success")
            return redirect(url_for(".router_page", router_id=router.id))
    return render_template("ispflow/routers_form.html", form=form, router=None,
                           export_target=settings().EXPORT_TARGET)


def _saved(form, change):
    """Run ``change(db)`` and commit; a bad field is explained next to it (None is returned)."""
    db = session()
    try:
        result = change(db)
    except InvalidRouter as exc:
        db.rollback()
        form.explain(exc)
        return None
    except ConfigError as exc:
        db.rollback()
        flash(str(exc), "error")
        return None
    db.commit()
    return result


@blueprint.route("/routers/<int:router_id>/edit", methods=["GET", "POST"])
@roles_required(*ROUTER_ROLES)
def router_edit(router_id: int):
    router = _router_or_404(router_id)
    if request.method == "POST":
        form = RouterForm.from_request()
    else:
        form = RouterForm(formdata=None, **{name: getattr(router, name) for name in FIELDS})
    if form.submitted_and_valid():
        user = current_user()
        saved = _saved(form, lambda db: update_router(db, settings(), router, actor=user.name, role=user.role,
                                                             password=form.password.data or None, **form.values()))
        if saved is not None:
            flash(f"Saved {router.name}. Provision it again to apply the changes.", "success")
            return redirect(url_for(".router_page", router_id=router.id))
    return render_template("ispflow/routers_form.html", form=form, router=router,
                           export_target=settings().EXPORT_TARGET)


@blueprint.route("/routers/<int:router_id>")
@roles_required(*ROUTER_ROLES)
def router_page(router_id: int):
    db = session()
    router = _router_or_404(router_id)
    status = router_statuses(db, [router])[0]
    commands, plan_error = preview(router, settings())
    jobs = list(db.execute(
        sa.select(RouterJob).where(RouterJob.router_id == router.id).order_by(RouterJob.id.desc()).limit(10)
    ).scalars())
    shown = next((j for j in jobs if str(j.id) == request.args.get("job")), jobs[0] if jobs else None)
    return render_template("ispflow/routers_page.html", router=router, status=status, commands=commands,
                           plan_error=plan_error, jobs=jobs, job=shown, action_form=CSRFForm(),
                           collector=_collector_text(router), plain_api=status.plain_api,
                           pinned=fingerprint(router.pinned_key), can_repin=current_user().role == ADMIN)


@blueprint.route("/routers/<int:router_id>/repin", methods=["POST"])
@roles_required(ADMIN)
def router_repin(router_id: int):
    """Forget the pinned certificate or host key; the next connection pins what it finds (audited)."""
    router = _router_or_404(router_id)
    if not CSRFForm.from_request().validate():
        flash("The form expired; reload the page and try again.", "error")
        return redirect(url_for(".router_page", router_id=router.id))
    user = current_user()
    repin(session(), router, actor=user.name, role=user.role)
    session().commit()
    flash(f"{router.name} will be pinned again at its next connection; compare what it shows with the router.",
          "success")
    return redirect(url_for(".router_page", router_id=router.id))


def _collector_text(router: Router) -> str:
    try:
        host, port = collector_of(router, settings())
    except ConfigError as exc:
        return str(exc)
    return f"{host}:{port}"


@blueprint.route("/routers/<int:router_id>/<any(provision, check, remove):action>", methods=["POST"])
@roles_required(*ROUTER_ROLES)
def router_action(router_id: int, action: str):
    router = _router_or_404(router_id)
    form = CSRFForm.from_request()
    if not form.validate():
        flash("The form expired; reload the page and try again.", "error")
        return redirect(url_for(".router_page", router_id=router.id))
    db = session()
    try:
        job = enqueue(db, settings(), router, action, requested_by=current_user().name)
    except JobRefused as exc:
        db.rollback()
        flash(str(exc), "error")
        return redirect(url_for(".router_page", router_id=router.id))
    flash(f"{action.capitalize()} of {router.name} queued.", "success")
    return redirect(url_for(".router_page", router_id=router.id, job=job.id))


@blueprint.route("/routers/jobs/<int:job_id>.json")
@roles_required(*ROUTER_ROLES)
def router_job_json(job_id: int):
    job = session().get(RouterJob, job_id)
    if job is None:
        abort(404)
    return jsonify(id=job.id, action=job.action, state=job.state, progress=job.progress, log=job.log,
                   message=job.message, done=job.done)
