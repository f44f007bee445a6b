"""Compliance pages: search the retained flows, look up who held an address, export CSV.

The views are thin: the form's text goes to ``ispflow.search`` (which validates it, answers
and writes the audit entry) and the answer to a template. Searches and lookups are POST forms
with a CSRF token: each one writes an audit entry in the officer's name, so another site must
not be able to trigger one.
"""
from __future__ import annotations

import os
from datetime import datetime, timedelta

from flask import abort, redirect, render_template, request, send_file, url_for
from wtforms import HiddenField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import ValidationError

from .. import audit
from ..app_state import engine, settings
from ..geoip import row_origins
from ..module_settings import load
from ..roles import COMPLIANCE
from ..search import jobs, service
from ..search.criteria import ORDERS, SIDES, CriteriaError, parse_address, parse_moment
from ..search.names import port_name, protocol_name, reverse_dns
from ..search.query import totals
from .blueprint import blueprint
from .access import current_user, menu_entry, roles_required
from .forms import CSRFForm

SIDE_LABELS = {"either": "source or destination", "src": "source", "dst": "destination"}
SIDE_CHOICES = [SelectChoice(side, SIDE_LABELS[side]) for side in SIDES]
ORDER_CHOICES = [SelectChoice("newest", "newest first"), SelectChoice("bytes", "largest first")]


class SearchForm(CSRFForm):
    ip = StringField("IP address or CIDR range")
    ip_side = SelectField("as", choices=SIDE_CHOICES, default="either")
    peer = StringField("Peer address (optional)")
    date_from = StringField("From (ISP time)")
    date_to = StringField("To (ISP time)")
    protocol = StringField("Protocol (tcp, 17, …)")
    port = StringField("Port or range (443, 1000-2000)")
    port_side = SelectField("as", choices=SIDE_CHOICES, default="either")
    account = StringField("Account")
    service = StringField("Service")
    case_ref = StringField("Case reference / legal basis")
    order = SelectField("Order", choices=ORDER_CHOICES, default="newest")
    after = HiddenField()
    this_page = HiddenField()

    # criteria field name -> form field
    FIELDS = {"ip": "ip", "ip_side": "ip_side", "peer": "peer", "from": "date_from", "to": "date_to",
              "protocol": "protocol", "port": "port", "port_side": "port_side", "account": "account",
              "service": "service", "case_ref": "case_ref"}

    def criteria_text(self) -> dict:
        return {key: getattr(self, name).data for key, name in self.FIELDS.items()}

    def show_errors(self, error: CriteriaError) -> None:
        for key, message in error.errors.items():
            field = getattr(self, self.FIELDS.get(key, "ip"))
            field.errors = [*field.errors, message]


class WhoForm(CSRFForm):
    ip = StringField("IP address (public, behind CGNAT)")
    port = StringField("Public port (optional)")
    remote = StringField("Remote address (optional)")
    at = StringField("At (ISP time, or with an offset)")
    case_ref = StringField("Case reference / legal basis")

    def validate_ip(self, field):
        try:
            parse_address(field.data or "")
        except ValueError as exc:
            raise ValidationError(str(exc)) from None

    def validate_port(self, field):
        text = (field.data or "").strip()
        if text and not (text.isdigit() and int(text) <= 65535):
            raise ValidationError(f"'{text}' is not a port number (0–65535).")

    def validate_remote(self, field):
        if (field.data or "").strip():
            try:
                parse_address(field.data)
            except ValueError as exc:
                raise ValidationError(str(exc)) from None

    def validate_case_ref(self, field):
        if not (field.data or "").strip():
            raise ValidationError("A case reference or legal basis is required before any result is shown.")


def _display(rows, zone, names=None):
    """Page rows as the template shows them: local times, names for numbers, country and AS."""
    shown = []
    places = row_origins(rows, settings())
    for r in rows:
        src, dst = str(r.src_addr), str(r.dst_addr)
        shown.append({
            "start": local(r.ts_start, zone), "end": local(r.ts_end, zone),
            "duration": f"{(r.ts_end - r.ts_start).total_seconds():.3f}",
            "src": src, "src_port": r.src_port, "src_service": port_name(r.src_port, r.protocol),
            "dst": dst, "dst_port": r.dst_port, "dst_service": port_name(r.dst_port, r.protocol),
            "src_name": (names or {}).get(src), "dst_name": (names or {}).get(dst),
            "src_origin": places[src].label(), "dst_origin": places[dst].label(),
            "protocol": r.protocol, "protocol_name": protocol_name(r.protocol),
            "bytes": r.bytes, "packets": r.packets, "status": r.status or "", "in_if": r.in_if,
            "out_if": r.out_if, "exporter": r.exporter or r.exporter_id, "account": r.account or "",
            "service": r.service or "",
            "src_nat": _translated(r.post_nat_src_addr, r.post_nat_src_port),
            "dst_nat": _translated(r.post_nat_dst_addr, r.post_nat_dst_port),
        })
    return shown


def _translated(address, port) -> str:
    """The NAT translation a flow record reported for one side, as text ('' when none)."""
    if address is None:
        return ""
    return str(address) + (f":{port}" if port is not None else "")


def local(moment, zone) -> str:
    """ISO 8601 in the ISP's time zone with its offset, to the second."""
    return moment.astimezone(zone).isoformat(sep=" ", timespec="seconds") if moment else ""


@blueprint.route("/search", methods=["GET", "POST"])
@menu_entry("Search", COMPLIANCE)
@roles_required(COMPLIANCE)
def search():
    form = SearchForm.from_request()
    user = current_user()
    with engine().connect() as conn:
        module = load(conn)
    context = {"form": form, "result": None, "rows": [], "zone": module.timezone,
               "retention": module.retention_flows_months}
    if request.method != "POST":
        today = datetime.now(module.zone).date()
        form.date_from.data, form.date_to.data = (today - timedelta(days=7)).isoformat(), today.isoformat()
        _fill_from_link(form)
        return render_template("ispflow/search.html", **context)
    if not form.validate():
        return render_template("ispflow/search.html", **context), 400
    action = request.form.get("action", "search")
    with engine().connect() as conn:
        try:
            criteria, module = service.criteria_from_text(conn, form.criteria_text())
        except CriteriaError as exc:
            form.show_errors(exc)
            return render_template("ispflow/search.html", **context), 400
        order = form.order.data if form.order.data in ORDERS else "newest"
        cursor = (form.after.data if action == "next" else form.this_page.data if action == "resolve" else "") or None
        try:
            if action == "export":
                return _start_export(conn, criteria, user)
            result = service.search(conn, criteria, actor=user.name, role=user.role, order=order, cursor=cursor)
        except CriteriaError as exc:
            form.show_errors(exc)
            return render_template("ispflow/search.html", **context), 400
        except ValueError as exc:  # a page position that was not ours
            form.ip.errors = [*form.ip.errors, str(exc)]
            return render_template("ispflow/search.html", **context), 400
    names = None
    if action == "resolve":
        names = reverse_dns.resolve({a for r in result.page.rows for a in (str(r.src_addr), str(r.dst_addr))})
    context.update(result=result, rows=_display(result.page.rows, module.zone, names), resolved=names is not None)
    return render_template("ispflow/search.html", **context)


def _fill_from_link(form: SearchForm) -> None:
    """Fill the form from a link's query string (a security finding's "flows" link).

    Only fills: the officer still gives the case reference and submits, so the search is
    audited like any other. The case reference is never taken from a link.
    """
    for key, name in SearchForm.FIELDS.items():
        value = request.args.get(key)
        if value and key != "case_ref":
            getattr(form, name).data = value


def _start_export(conn, criteria, user):
    small = totals(conn, criteria).flows <= jobs.SYNC_EXPORT_ROWS
    export_id = jobs.create_export(conn, criteria, requested_by=user.name, role=user.role)
    conn.commit()
    if small:
        jobs.run_export(export_id, settings())
    else:
        jobs.enqueue_export(export_id, settings())
    return redirect(url_for(".export_status", export_id=export_id))


@blueprint.route("/exports")
@menu_entry("Exports", COMPLIANCE)
@roles_required(COMPLIANCE)
def exports():
    with engine().connect() as conn:
        rows = jobs.exports_of(conn, current_user().name)
        zone = load(conn).zone
    return render_template("ispflow/search_exports.html", exports=rows, zone=zone, local=local)


def _own_export(export_id: int):
    with engine().connect() as conn:
        row = jobs.get_export(conn, export_id)
        zone = load(conn).zone
    if row is None or row.requested_by != current_user().name:
        abort(404)
    return row, zone


@blueprint.route("/exports/<int:export_id>")
@roles_required(COMPLIANCE)
def export_status(export_id):
    row, zone = _own_export(export_id)
    return render_template("ispflow/search_export.html", export=row, zone=zone, local=local)


@blueprint.route("/exports/<int:export_id>/download")
@roles_required(COMPLIANCE)
def export_download(export_id):
    row, _ = _own_export(export_id)
    if row.state != "finished" or not row.path or not os.path.exists(row.path):
        abort(404)
    user = current_user()
    with engine().begin() as conn:
        audit.record(conn, actor=user.name, role=user.role, action="export.download",
                     criteria={"export_id": export_id}, case_ref=row.case_ref, row_count=row.row_count,
                     export_sha256=row.sha256)
    return send_file(row.path, mimetype="text/csv", as_attachment=True, download_name=os.path.basename(row.path))


@blueprint.route("/exports/<int:export_id>/manifest")
@roles_required(COMPLIANCE)
def export_manifest(export_id):
    row, _ = _own_export(export_id)
    manifest_path = jobs.manifest_path(row.path or "")
    if row.state != "finished" or not row.path or not os.path.exists(manifest_path):
        abort(404)
    return send_file(manifest_path, mimetype="application/json", as_attachment=True,
                     download_name=os.path.basename(manifest_path))


@blueprint.route("/who", methods=["GET", "POST"])
@menu_entry("Who held an address", COMPLIANCE)
@roles_required(COMPLIANCE)
def who():
    form = WhoForm.from_request()
    user = current_user()
    with engine().connect() as conn:
        module = load(conn)
        answer = None
        if form.submitted_and_valid():
            try:
                at = parse_moment(form.at.data or "", module.zone, "At")
            except ValueError as exc:
                form.at.errors = [str(exc)]
                return render_template("ispflow/who.html", form=form, answer=None, zone=module.timezone), 400
            port = int(form.port.data) if (form.port.data or "").strip() else None
            remote = str(parse_address(form.remote.data)) if (form.remote.data or "").strip() else None
            holder = service.lookup(conn, form.ip.data.strip(), at, port, case_ref=form.case_ref.data.strip(),
                                    actor=user.name, role=user.role, remote=remote)
            answer = {"holder": holder, "at": local(at, module.zone),
                      "nat_since": local(holder.nat_since, module.zone) if holder and holder.nat_since else None,
                      "nat_until": local(holder.nat_until, module.zone) if holder and holder.nat_until else None}
    status = 400 if request.method == "POST" and form.errors else 200
    return render_template("ispflow/who.html", form=form, answer=answer, zone=module.timezone,
                           to_local=lambda moment: local(moment, module.zone)), status

