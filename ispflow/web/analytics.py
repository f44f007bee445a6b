"""Traffic pages: bandwidth graphs, top reports and usage for billing.

Staff (admins, technicians, compliance officers) see any address, account, service,
interface or the whole network; compliance officers also get links from report rows to the
flow records (the search form filled in, audited when they run it). A customer reaches the
same pages but every request is narrowed to the traffic stamped with their account at ingest
(the account that held the address when the flow started), whatever the parameters say; a
parameter naming anything else is refused with 404.

Each page is rendered with its data (tables as the accessible fallback) and draws its chart
from the matching ``.json`` endpoint, which the page's script also calls when the period
changes, so no reload is needed.
"""
from __future__ import annotations

from datetime import datetime, timezone
from functools import wraps

from flask import Response, abort, jsonify, render_template, request, url_for

from ..analytics import bandwidth, top, usage
from ..analytics.bandwidth import PERIODS, SAMPLE, Scope, ScopeError
from ..analytics.rollups import floor_time
from ..app_state import session
from ..module_settings import load
from ..retention.storage import human_bytes
from ..roles import ADMIN, COMPLIANCE, CUSTOMER, STAFF, TECHNICIAN
from ..search.criteria import parse_moment, parse_network
from .blueprint import blueprint
from .access import current_user, menu_entry, roles_required

PERIOD_CHOICES = ("hour", "day", "week", "month", "custom")
STAFF_KINDS = ("network", "address", "account", "service", "interface")
CUSTOMER_KINDS = ("account", "address")


class BadRequest(ValueError):
    """A parameter is wrong; the message says which and why (HTTP 400)."""


def _conn():
    return session().connection()


def _zone():
    return load(_conn()).zone


def period(args, zone, now: datetime | None = None) -> tuple[datetime, datetime, str]:
    """(start, end, name) of the period asked for: a named one ending now, or custom from/to."""
    name = args.get("period") or "day"
    if name not in PERIOD_CHOICES:
        raise BadRequest(f"period must be one of {', '.join(PERIOD_CHOICES)}")
    if name != "custom":
        # Ends with the current 5-minute sample, so a day is exactly 288 samples.
        end = floor_time(now or datetime.now(timezone.utc), SAMPLE) + SAMPLE
        return end - PERIODS[name], end, name
    try:
        start = parse_moment(args.get("from", ""), zone, "From")
        end = parse_moment(args.get("to", ""), zone, "To", True)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    if end <= start:
        raise BadRequest("'To' must be later than 'From'.")
    return start, end, name


def _ever_held(account: str, network) -> bool:
    """Whether ``account`` has ever held an assignment covering all of ``network``."""
    return bool(_conn().exec_driver_sql(
        "select 1 from ispflow.ip_assignments where account = %(a)s and prefix >>= cast(%(n)s as inet) limit 1",
        {"a": account, "n": str(network)}).scalar())


def _customer_network(account: str, text: str):
    """The customer's address or prefix, only if their account ever held it (else 404)."""
    try:
        network = parse_network(text)
    except ValueError:
        abort(404)
    if not _ever_held(account, network):
        abort(404)
    return network


def graph_scope(args, user) -> Scope:
    """The Scope a request asks for, narrowed to the customer's own account for customers."""
    kind = args.get("kind") or ("account" if user.role == CUSTOMER else "network")
    value = (args.get("value") or "").strip()
    if user.role == CUSTOMER:
        if kind not in CUSTOMER_KINDS or (kind == "account" and value not in ("", user.account)):
            abort(404)
        if kind == "address":
            return Scope("address", network=_customer_network(user.account, value), account=user.account)
        return Scope("account", account=user.account)
    if kind not in STAFF_KINDS:
        raise BadRequest(f"kind must be one of {', '.join(STAFF_KINDS)}")
    try:
        if kind == "address":
            return Scope("address", network=parse_network(value))
        if kind == "interface":
            exporter, _, index = value.partition(":")
            return Scope("interface", exporter_id=int(exporter), if_index=int(index) if index else None)
        return Scope(kind, account=value or None if kind == "account" else None,
                     service=value or None if kind == "service" else None)
    except (ValueError, ScopeError) as exc:
        raise BadRequest(str(exc) if str(exc) else f"{kind} {value!r} is not valid") from None


def _series(args):
    user = current_user()
    zone = _zone()
    scope = graph_scope(args, user)
    start, end, name = period(args, zone)
    step = bandwidth.parse_step(args["step"]) if args.get("step") else None
    result = bandwidth.series(_conn(), scope, start, end, step)
    return result, zone, name


def explains_bad_requests(as_json: bool):
    """Answer a wrong parameter with 400 and the sentence saying why (JSON or a page)."""

    def decorate(view):
        @wraps(view)
        def answered(*args, **kwargs):
            try:
                return view(*args, **kwargs)
            except (BadRequest, ScopeError) as exc:
                if as_json:
                    return jsonify({"error": str(exc)}), 400
                return render_template("ispflow/analytics_error.html", message=str(exc)), 400

        return answered

    return decorate


def _stats_view(result) -> list[dict]:
    return [{"direction": direction, "volume": human_bytes(stats.volume_bytes),
             "peak": bandwidth.human_rate(stats.peak_bps), "average": bandwidth.human_rate(stats.average_bps),
             "p95": bandwidth.human_rate(stats.p95_bps)} for direction, stats in result.stats.items()]


def _graph_json(result, zone) -> dict:
    data = result.to_json(zone)
    data["stats_text"] = _stats_view(result)
    data["local_time"] = [b.astimezone(zone).strftime("%Y-%m-%d %H:%M") for b in result.buckets]
    data["in_text"] = [bandwidth.human_rate(r) for r in result.rate("in")]
    data["out_text"] = [bandwidth.human_rate(r) for r in result.rate("out")]
    return data


@blueprint.route("/traffic")
@menu_entry("Traffic", ADMIN, TECHNICIAN, COMPLIANCE, CUSTOMER)
@roles_required(*STAFF, CUSTOMER)
@explains_bad_requests(as_json=False)
def traffic():
    result, zone, name = _series(request.args)
    return render_template("ispflow/traffic.html", graph=_graph_json(result, zone), period=name,
                           args=request.args, is_customer=current_user().role == CUSTOMER,
                           held=_held_addresses() if current_user().role == CUSTOMER else [],
                           exporters=[] if current_user().role == CUSTOMER else _exporters(),
                           json_url=url_for(".traffic_json", **request.args))


@blueprint.route("/traffic.json")
@roles_required(*STAFF, CUSTOMER)
@explains_bad_requests(as_json=True)
def traffic_json():
    result, zone, _ = _series(request.args)
    return jsonify(_graph_json(result, zone))


def _exporters() -> list:
    """The exporters, for choosing an interface graph (EXPORTER_ID:IFINDEX)."""
    return list(_conn().exec_driver_sql(
        "select id, coalesce(name, host(address)) as name, host(address) as address from ispflow.exporters "
        "order by id limit 200"))


def _held_addresses() -> list[str]:
    """Every prefix the customer's account has held, for the address chooser."""
    rows = _conn().exec_driver_sql(
        "select distinct text(prefix) from ispflow.ip_assignments where account = %(a)s order by 1",
        {"a": current_user().account})
    return [r[0] for r in rows]


# --- top reports ----------------------------------------------------------------------
def _report(args):
    user = current_user()
    zone = _zone()
    by = args.get("by") or "application"
    order = args.get("order") or "bytes"
    reports = top.REPORTS if user.role != CUSTOMER else tuple(r for r in top.REPORTS if r != "subscriber")
    if by not in reports:
        raise BadRequest(f"by must be one of {', '.join(reports)}")
    try:
        limit = min(max(int(args.get("limit") or 10), 1), 1000)
    except ValueError:
        raise BadRequest("limit must be a number") from None
    start, end, name = period(args, zone)
    account, network = None, None
    if user.role == CUSTOMER:
        if args.get("account") not in (None, "", user.account):
            abort(404)
        account = user.account
        if args.get("ip"):
            network = _customer_network(user.account, args["ip"])
    else:
        account = (args.get("account") or "").strip() or None
        if args.get("ip"):
            try:
                network = parse_network(args["ip"])
            except ValueError as exc:
                raise BadRequest(str(exc)) from None
    try:
        result = top.report(_conn(), by, start, end, order, limit, account=account, network=network)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    return result, zone, name


def _report_json(result, zone, period_name: str) -> dict:
    data = result.to_json(zone)
    user = current_user()
    for row, shown in zip(result.rows, data["rows"]):
        shown["volume"] = human_bytes(row.bytes)
        shown["links"] = [] if row.other else _drill_down(result, row, user, period_name)
    data["total"]["volume"] = human_bytes(result.total.bytes)
    return data


def _drill_down(result, row, user, period_name: str) -> list[dict]:
    """Where a report row leads: its graph, and for compliance officers its flow records."""
    links = []
    timing = {"period": "custom", "from": result.start.isoformat(), "to": result.end.isoformat()}
    addresses = [k for k in row.key if k] if result.by in ("source", "destination", "conversation") else []
    if result.by in ("source", "destination") and (user.role != CUSTOMER or _ever_held(user.account, addresses[0])):
        links.append({"label": "graph", "href": url_for(".traffic", kind="address", value=addresses[0], **timing)})
    if result.by == "subscriber":
        links.append({"label": "graph", "href": url_for(".traffic", kind="account", value=row.key[0], **timing)})
    if user.role == COMPLIANCE:
        search = {"from": result.start.isoformat(), "to": result.end.isoformat()}
        if addresses:
            search["ip"] = addresses[0]
            if len(addresses) == 2:
                search["peer"] = addresses[1]
        elif result.by == "subscriber":
            search["account"] = row.key[0]
        elif result.by == "protocol":
            search["protocol"], search["port"] = row.key[0], row.key[1] or ""
            search.update({"account": result.scope.get("account", ""), "ip": result.scope.get("network", "")})
        if result.scope.get("account") and "account" not in search:
            search["account"] = result.scope["account"]
        if search.get("ip") or search.get("account"):
            links.append({"label": "flow records", "href": url_for(".search", **search)})
    return links


@blueprint.route("/top")
@menu_entry("Top reports", ADMIN, TECHNICIAN, COMPLIANCE, CUSTOMER)
@roles_required(*STAFF, CUSTOMER)
@explains_bad_requests(as_json=False)
def top_report():
    result, zone, name = _report(request.args)
    user = current_user()
    reports = [r for r in top.REPORTS if user.role != CUSTOMER or r != "subscriber"]
    return render_template("ispflow/top.html", report=_report_json(result, zone, name), period=name,
                           args=request.args, reports=reports, is_customer=user.role == CUSTOMER,
                           json_url=url_for(".top_json", **request.args))


@blueprint.route("/top.json")
@roles_required(*STAFF, CUSTOMER)
@explains_bad_requests(as_json=True)
def top_json():
    result, zone, name = _report(request.args)
    return jsonify(_report_json(result, zone, name))


# --- usage for billing ------------------------------------------------------------------
def _usage(args):
    zone = _zone()
    text = args.get("month") or usage.previous_month(datetime.now(zone).date()).strftime("%Y-%m")
    try:
        month = usage.parse_month(text)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    account = (args.get("account") or "").strip() or None
    return usage.monthly_usage(_conn(), month, zone, account), month


@blueprint.route("/usage")
@menu_entry("Usage", ADMIN)
@roles_required(ADMIN)
@explains_bad_requests(as_json=False)
def usage_page():
    rows, month = _usage(request.args)
    return render_template("ispflow/usage.html", rows=rows, month=month.strftime("%Y-%m"), args=request.args,
                           human_rate=bandwidth.human_rate, human_bytes=human_bytes)


@blueprint.route("/usage.csv")
@roles_required(ADMIN)
@explains_bad_requests(as_json=True)
def usage_csv():
    rows, month = _usage(request.args)
    return Response(usage.to_csv(rows), mimetype="text/csv", headers={
        "Content-Disposition": f"attachment; filename=ispflow-usage-{month.strftime('%Y-%m')}.csv"})


@blueprint.route("/usage.json")
@roles_required(ADMIN)
@explains_bad_requests(as_json=True)
def usage_json():
    rows, month = _usage(request.args)
    return jsonify({"month": month.strftime("%Y-%m"), "accounts": [r.to_json() for r in rows]})
