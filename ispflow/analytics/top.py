"""Top reports: the heaviest sources, destinations, conversations, applications, protocols and
subscribers of a period, by bytes or by flows.

Whole-network and per-account reports read the hourly roll-ups up to their watermark and the
raw flows after it. The network's sources, destinations and conversations are kept per hour
only for the heaviest ones (rollups.TOP_NETWORK, by bytes and by flows); the rest of each hour
is one remainder row, shown as "others", so totals stay exact and a long period's ranking is
that of the hours' leaders; an account's likewise (rollups.TOP_ACCOUNT per account and hour).
An account's hours of at most rollups.SHALLOW flows have no talker or application rows of
their own and are read from its raw flows. After the
watermark an account's talkers come from the raw flows of the addresses it held;
any report for an address or prefix reads the raw flows (through the address indexes) and is
exact. Talkers are ranked inside PostgreSQL, so a month's report fetches only its top rows.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ..search.names import port_name, protocol_name
from . import rollups
from .rollups import SERVICE_PORT, SUM

REPORTS = ("source", "destination", "application", "conversation", "subscriber", "protocol")
TALKERS = ("source", "destination", "conversation")
ORDERS = ("bytes", "flows")

# (protocol, port) -> application class; protocols without ports are matched with port None.
_CLASSES = {
    "web": [(6, 80), (6, 443), (17, 443), (6, 8080), (6, 8443), (6, 8000)],
    "mail": [(6, 25), (6, 465), (6, 587), (6, 110), (6, 995), (6, 143), (6, 993)],
    "DNS": [(17, 53), (6, 53), (6, 853), (17, 853)],
    "SSH": [(6, 22)],
    "VPN": [(17, 500), (17, 4500), (17, 1194), (6, 1194), (17, 1701), (6, 1723), (17, 51820), (50, None),
            (47, None), (51, None)],
    "streaming": [(6, 1935), (6, 554), (17, 554), (6, 8554), (6, 1755)],
    "P2P": [(6, p) for p in range(6881, 6890)] + [(17, p) for p in range(6881, 6890)] + [(6, 51413), (17, 51413),
                                                                                       (6, 4662), (17, 4672)],
    "remote desktop": [(6, 3389), (17, 3389), (6, 5900)],
    "file transfer": [(6, 20), (6, 21), (6, 989), (6, 990), (6, 445), (6, 873)],
    "time": [(17, 123)],
    "VoIP": [(17, 5060), (6, 5060), (6, 5061)],
    "ICMP": [(1, None), (58, None)],
}
_CLASS_OF = {key: name for name, keys in _CLASSES.items() for key in keys}


def application(protocol: int, port: int) -> str:
    """The application class of a service port: web, mail, DNS, SSH, VPN, streaming, P2P, …"""
    return _CLASS_OF.get((protocol, port)) or _CLASS_OF.get((protocol, None)) or "other"


def protocol_label(protocol: int, port: int) -> str:
    """'https (tcp/443)', 'icmp', 'udp/other' for a protocol and service port."""
    transport = protocol_name(protocol)
    if port == 0:
        return transport if protocol not in (6, 17, 132) else f"{transport}/other"
    name = port_name(port, protocol)
    return f"{name} ({transport}/{port})" if name else f"{transport}/{port}"


@dataclass
class TopRow:
    key: tuple            # address / (src, dst) / account / class / (protocol, port)
    label: str
    bytes: int = 0
    packets: int = 0
    flows: int = 0
    other: bool = False   # the summed remainder of hours' non-leaders


@dataclass
class TopReport:
    by: str
    order: str
    start: datetime
    end: datetime
    rows: list[TopRow]
    total: TopRow
    rolled_up_until: datetime | None = None
    exact: bool = True
    scope: dict = field(default_factory=dict)

    def to_json(self, zone=None) -> dict:
        def moment(value):
            return (value.astimezone(zone) if zone else value).isoformat() if value else None

        def row(r: TopRow) -> dict:
            return {"key": [str(k) if k is not None else None for k in r.key], "label": r.label, "bytes": r.bytes,
                    "packets": r.packets, "flows": r.flows, "other": r.other}

        return {"by": self.by, "order": self.order, "start": moment(self.start), "end": moment(self.end),
                "rows": [row(r) for r in self.rows], "total": row(self.total), "exact": self.exact,
                "rolled_up_until": moment(self.rolled_up_until), "scope": self.scope}


def _keys(by: str) -> tuple[str, str]:
    """(roll-up columns, raw-flow expressions) that identify a row of the report."""
    return {
        "source": ("src_addr", "f.src_addr"),
        "destination": ("dst_addr", "f.dst_addr"),
        "conversation": ("src_addr, dst_addr", "f.src_addr, f.dst_addr"),
        "subscriber": ("account", "f.account"),
        "application": ("protocol, port", f"f.protocol, {SERVICE_PORT}"),
        "protocol": ("protocol, port", f"f.protocol, {SERVICE_PORT}"),
    }[by]


def _rollup_sql(by: str, account: str | None, params: dict) -> str:
    columns, _ = _keys(by)
    scope = "account is null" if account is None else "account = %(account)s"
    if by in TALKERS:
        params["kind"] = by
        table = "rollup_talkers_1h" if account is None else "rollup_account_talkers_1h"
        where = "kind = %(kind)s" if account is None else f"{scope} and kind = %(kind)s"
    elif by == "subscriber":
        table, where = "rollup_accounts_1h", "true" if account is None else scope
    else:
        table, where = "rollup_apps_1h", scope
    return (f"select {columns}, {SUM}(bytes), {SUM}(packets), {SUM}(flows) from ispflow.{table} "
            f"where {where} and bucket >= %(from)s and bucket < %(until)s group by {columns}")


def _raw_sql(by: str, account: str | None, network, params: dict, held=None) -> str:
    _, expressions = _keys(by)
    parts = ["f.ts_start >= %(from)s", "f.ts_start < %(until)s"]
    if held is not None:
        parts.append(held)
    if by == "subscriber":
        parts.append("f.account is not null and f.direction is not null")
    if account is not None:
        parts.append("f.account = %(account)s")
    count = len(expressions.split(", ")) if by not in ("application", "protocol") else 2
    select = f"select {expressions}, {SUM}(f.bytes), {SUM}(f.packets), count(*) from ispflow.flow_records f"
    group = ", ".join(str(i) for i in range(1, count + 1))
    if network is None:
        return f"{select} where {' and '.join(parts)} group by {group}"
    params["network"] = str(network)
    op = "<<=" if network.num_addresses > 1 else "="
    where = " and ".join(parts)
    # Either side, as two disjoint branches so each uses its address index.
    return (f"select * from ({select} where {where} and f.src_addr {op} cast(%(network)s as inet) group by {group}) a "
            f"union all select * from ({select} where {where} and f.dst_addr {op} cast(%(network)s as inet) "
            f"and not f.src_addr {op} cast(%(network)s as inet) group by {group}) b")


def report(conn, by: str, start: datetime, end: datetime, order: str = "bytes", limit: int = 10,
           account: str | None = None, network=None) -> TopReport:
    """The top ``limit`` rows of report ``by`` over ``[start, end)`` (widened to whole hours).

    ``account`` limits the report to traffic stamped with that account (a customer's view);
    ``network`` (an ipaddress network) to flows with an address in it.
    """
    if by not in REPORTS:
        raise ValueError(f"unknown report {by!r}; expected one of {', '.join(REPORTS)}")
    if order not in ORDERS:
        raise ValueError(f"order must be bytes or flows, not {order!r}")
    start = rollups.floor_time(start, rollups.HOUR)
    end = rollups.floor_time(end - timedelta(microseconds=1), rollups.HOUR) + rollups.HOUR
    if end <= start:
        raise ValueError("the end of the period must be later than its start")
    rollups.for_aggregates(conn)
    done = rollups.watermark(conn)
    boundary = start if network is not None else min(max(done or start, start), end)
    params = {"from": start, "boundary": boundary, "until": end, "account": account}
    parts = []
    held = None
    if account is not None and network is None and by != "subscriber":
        # Raw flows of an account: its addresses' flows, found through the address indexes from
        # the prefixes it held and when, like an account search.
        held, held_params = _held_addresses(conn, account, start, end)
        params.update(held_params)
    if boundary > start:
        rolled = _rollup_sql(by, account, params).replace("%(until)s", "%(boundary)s")
        if held is not None:
            raw_hours, runs = _raw_hours(conn, account, start, boundary)
            if raw_hours:
                params["raw_hours"] = raw_hours
                rolled = rolled.replace(" group by ", " and bucket <> all(%(raw_hours)s) group by ", 1)
                parts += _raw_runs(by, account, params, held, runs)
        parts.append(rolled)
    if boundary < end:
        parts.append(_raw_sql(by, account, network, params, held).replace("%(from)s", "%(boundary)s"))
    width = 2 if by in ("conversation", "application", "protocol") else 1
    if by in ("application", "protocol"):
        rows, total = _classified(by, conn, parts, params, width)
    else:
        rows, total = _ranked(conn, parts, params, width, order, limit)
    exact = boundary == start or by not in TALKERS
    ranked = sorted((r for r in rows if not r.other),
                    key=lambda r: (getattr(r, order), r.bytes if order == "flows" else r.flows), reverse=True)
    shown = ranked[:limit] + [r for r in rows if r.other]
    scope = {"account": account, "network": str(network) if network else None}
    return TopReport(by, order, start, end, shown, total, done, exact, {k: v for k, v in scope.items() if v})


_MAX_RUNS = 32   # raw branches of one report; more runs are read as one range, filtered by hour


def _raw_hours(conn, account: str, start: datetime, end: datetime):
    """The account's hours in ``[start, end)`` that are read raw (rollups.SHALLOW: a raw marker
    among its talker rows, found through a small partial index), and the runs of consecutive
    ones as ``[from, until)``."""
    hours = [row[0] for row in rollups.fetch_all(
        conn, "select distinct bucket from ispflow.rollup_account_talkers_1h where raw and account = %(a)s "
              "and bucket >= %(s)s and bucket < %(e)s order by bucket", {"a": account, "s": start, "e": end})]
    runs = []
    for hour in hours:
        if runs and runs[-1][1] == hour:
            runs[-1][1] = hour + rollups.HOUR
        else:
            runs.append([hour, hour + rollups.HOUR])
    return hours, [tuple(run) for run in runs]


def _raw_runs(by: str, account: str, params: dict, held: str, runs) -> list[str]:
    """Raw-flow parts for the runs of raw hours: one per run, each an index range of its own."""
    if len(runs) > _MAX_RUNS:
        runs = [(runs[0][0], runs[-1][1])]
        only = " and time_bucket('1 hour', f.ts_start) = any(%(raw_hours)s)"
    else:
        only = ""
    parts = []
    for i, (first, until) in enumerate(runs):
        params[f"run_from_{i}"], params[f"run_until_{i}"] = first, until
        sql = _raw_sql(by, account, None, params, held + only)
        parts.append(sql.replace("%(from)s", f"%(run_from_{i})s").replace("%(until)s", f"%(run_until_{i})s"))
    return parts


def _summed(parts: list[str], width: int) -> str:
    """The rows of every part (roll-ups, then raw flows) summed per key."""
    keys = [f"k{i}" for i in range(width)]
    union = " union all ".join(f"select * from ({part}) p{i}" for i, part in enumerate(parts))
    return (f"select {', '.join(keys)}, {SUM}(b) as b, {SUM}(p) as p, {SUM}(f) as f "
            f"from ({union}) u({', '.join(keys)}, b, p, f) group by {', '.join(keys)}")


def _ranked(conn, parts, params, width, order, limit) -> tuple[list[TopRow], TopRow]:
    """Ranked inside PostgreSQL: only the top ``limit``, the remainder rows and the totals come back
    (a month of hourly talkers is hundreds of thousands of keys). The top rows are a bounded
    heap's pick (``order by … limit``), not a sort of every key."""
    keys = [f"k{i}" for i in range(width)]
    other = " and ".join(f"{k} is null" for k in keys)
    first, second = ("b", "f") if order == "bytes" else ("f", "b")
    params["limit"] = int(limit)
    sql = (f"with g as materialized ({_summed(parts, width)}) "
           f"(select *, 0 from g where not ({other}) order by {first} desc, {second} desc limit %(limit)s) "
           f"union all (select *, 1 from g where {other}) "
           f"union all (select {', '.join('null' for _ in keys)}, {SUM}(b), {SUM}(p), {SUM}(f), 2 from g)")
    sums, totals = {}, (0, 0, 0)
    for row in rollups.fetch_all(conn, sql, params):
        counts = tuple(int(v or 0) for v in row[width:width + 3])
        if row[-1] == 2:
            totals = counts
        else:
            sums[tuple(row[:width])] = list(counts)
    return _labelled_talkers(sums), TopRow((), "total", *totals)


def _classified(by, conn, parts, params, width) -> tuple[list[TopRow], TopRow]:
    """Applications and protocols: few keys, classified and merged here."""
    sums = {tuple(row[:width]): [int(v or 0) for v in row[width:]]
            for row in rollups.fetch_all(conn, _summed(parts, width), params)}
    rows = _labelled(by, sums)
    return rows, TopRow((), "total", *(sum(getattr(r, f) for r in rows) for f in ("bytes", "packets", "flows")))


def _held_addresses(conn, account: str, start: datetime, end: datetime) -> tuple[str, dict]:
    """A condition on flows f matching the addresses ``account`` held, while it held them."""
    from ..search.criteria import Criteria
    from ..search.query import address_condition, common_conditions, subscriber_scope

    criteria = Criteria(start=start, end=end, case_ref="", account=account)
    scope = subscriber_scope(conn, criteria)
    _, params = common_conditions(criteria, scope)
    params.pop("start"), params.pop("end")
    return f"({address_condition(criteria, scope)})", params


def _labelled(by: str, sums: dict) -> list[TopRow]:
    merged: dict[tuple, TopRow] = {}
    for (protocol, port), (b, p, f) in sums.items():
        key = (application(protocol, port),) if by == "application" else (protocol, port)
        label = key[0] if by == "application" else protocol_label(protocol, port)
        row = merged.setdefault(key, TopRow(key, label))
        row.bytes, row.packets, row.flows = row.bytes + b, row.packets + p, row.flows + f
    return list(merged.values())


def _labelled_talkers(sums: dict) -> list[TopRow]:
    rows = []
    for key, (b, p, f) in sums.items():
        other = all(k is None for k in key)
        label = "others" if other else " ⇄ ".join(str(k) for k in key)
        rows.append(TopRow(key, label, b, p, f, other))
    return rows

