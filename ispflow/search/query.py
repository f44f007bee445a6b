"""SQL for searches over flow records (``ispflow.flow_records``: flows with their attribution),
one page at a time, totals, and the export query.

Values only ever travel as bound parameters (psycopg2's ``%(name)s``); the SQL text is built
from fixed fragments chosen by the criteria. A search for an address on either side runs as
two disjoint branches (source side, then destination side but not source side) joined by
UNION ALL, so each branch reads its own address index (the address alone, deduplicated:
docs/storage.md) for the daily chunks of its time window, and newest-first pages are read in
time slices (``fetch_page``), so a first page sorts the matches of a day or a few, not of months.

A search by account or service goes through the subscriber directory: the prefixes the
account (or service) held, each with its validity period, become address ranges with time
windows on the same two address indexes (flows has no account index: it would cost ingest,
docs/storage.md). A flow matches when one of its addresses was the subscriber's at its start,
by the directory's rule (``subscribers``): where a more specific prefix nested in one of the
account's was held by someone at the time, that part of the window is carved out.

Pages use keyset paging, never OFFSET. Flows have no id: the tie-breaker is the row's
physical address ``ctid`` (the view's ``rid``), which is unique among rows with the same ``ts_start`` (they are in
the same one-day chunk) and stable because flow rows are never updated (retention drops whole
chunks).
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta, timezone

from .. import tables
from ..database import without_jit
from .criteria import Criteria, CriteriaError

PAGE_SIZE = 100

# A page's rows are chosen from the flows themselves, with the row's physical address (rid) as
# the paging tie-breaker, and are given their holder's names and their status afterwards, as
# the view flow_records shows them: joined in the branches, the holders were hashed whole for
# every page (+3 ms on a first page).
_FLOW_COLUMNS = ", ".join(f"f.{name}" for name in tables.names(tables.flows)) + ", f.ctid as rid"
_NAMED = ("p.*, h.account, h.service, ispflow.flow_status(p.protocol, p.tcp_flags) as status, "
          "coalesce(e.name, host(e.address)) as exporter")


@dataclass(frozen=True)
class Page:
    rows: list          # database rows, newest first or largest first
    next_cursor: str | None


@dataclass(frozen=True)
class Totals:
    flows: int
    bytes: int
    packets: int


def _match(column: str, param: str, network) -> str:
    # A single host compares with '=', a range with '<<=', which PostgreSQL turns into an
    # index range scan of the address btree.
    if network.num_addresses == 1:
        return f"{column} = cast(%({param})s as inet)"
    return f"{column} <<= cast(%({param})s as inet)"


MAX_SCOPE = 2000  # address assignments one account/service search may cover


def _side(criteria: Criteria, near: str, far: str) -> str:
    parts = [_match(f"f.{near}_addr", "ip", criteria.ip)]
    if criteria.peer is not None:
        parts.append(_match(f"f.{far}_addr", "peer", criteria.peer))
    return " and ".join(parts)


def _scope_side(scope, side: str) -> str:
    if not scope:
        return "false"

    def window(param: str, network) -> str:
        return (f"{_match(f'f.{side}_addr', f'{param}p', network)} "
                f"and f.ts_start >= %({param}f)s and f.ts_start < %({param}t)s")

    return "(" + " or ".join(
        "(" + window(f"s{i}", network)
        + "".join(f" and not ({window(f's{i}x{j}', nested)})" for j, (nested, _, _) in enumerate(carved))
        + ")"
        for i, (network, _, _, carved) in enumerate(scope)
    ) + ")"


def subscriber_scope(conn, criteria: Criteria):
    """The (prefix, from, to) windows of the account/service searched; None when neither is given.

    ``conn`` is a SQLAlchemy Connection or a psycopg2 connection. Raises CriteriaError when the
    account or service covers more assignments than one search should OR together.
    """
    if not criteria.account and not criteria.service:
        return None
    sql = ("select id, prefix, greatest(valid_from, %(start)s) as f, "
           "least(coalesce(valid_to, %(end)s), %(end)s) as t "
           "from ispflow.ip_assignments where valid_from < %(end)s and (valid_to is null or valid_to > %(start)s)")
    params = {"start": criteria.start, "end": criteria.end, "limit": MAX_SCOPE + 1}
    for key in ("account", "service"):
        if getattr(criteria, key):
            sql += f" and {key} = %({key})s"
            params[key] = getattr(criteria, key)
    sql = (f"with scope as ({sql} order by prefix, valid_from limit %(limit)s) "
           "select s.id, text(s.prefix), s.f, s.t, text(n.prefix), greatest(n.valid_from, s.f), "
           "least(coalesce(n.valid_to, s.t), s.t) from scope s "
           "left join ispflow.ip_assignments n on n.prefix << s.prefix and n.valid_from < s.t "
           "and (n.valid_to is null or n.valid_to > s.f) order by s.prefix, s.f, n.prefix, n.valid_from")
    if hasattr(conn, "exec_driver_sql"):
        rows = conn.exec_driver_sql(sql, params).all()
    else:
        with conn.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
    windows: dict = {}
    for key, prefix, start, end, nested, nested_start, nested_end in rows:
        carved = windows.setdefault(key, (ipaddress.ip_network(prefix), start, end, []))[3]
        if nested is not None:
            carved.append((ipaddress.ip_network(nested), nested_start, nested_end))
    if len(windows) > MAX_SCOPE or sum(len(w[3]) for w in windows.values()) > MAX_SCOPE:
        field = "account" if criteria.account else "service"
        raise CriteriaError({field: f"This {field} covers more than {MAX_SCOPE} address assignments; "
                                    "add an address range to narrow the search."})
    return tuple((network, start, end, tuple(carved)) for network, start, end, carved in windows.values())


def branches(criteria: Criteria, scope=None) -> list[str]:
    """Disjoint conditions whose union is the address part of the search."""
    if criteria.ip is None:
        if scope is None:
            return ["true"]
        as_source = _scope_side(scope, "src")
        return [as_source, f"{_scope_side(scope, 'dst')} and not {as_source}"]
    as_source = _side(criteria, "src", "dst")
    # A NAT device's flow record may carry the public source it translated to (post_nat_src_addr):
    # searching that public address finds the outgoing flow too. Replies already carry it as dst.
    as_public_source = _side(criteria, "post_nat_src", "dst")
    if criteria.ip_side == "src":
        return [as_source, f"{as_public_source} and not ({as_source})"]
    as_destination = _side(criteria, "dst", "src")
    if criteria.ip_side == "dst":
        return [as_destination]
    return [as_source, f"{as_destination} and not ({as_source})",
            f"{as_public_source} and not ({as_source}) and not ({as_destination})"]


def common_conditions(criteria: Criteria, scope=None) -> tuple[str, dict]:
    """The conditions every branch shares, and the parameters of the whole query."""
    params: dict = {"start": criteria.start, "end": criteria.end}
    if criteria.ip is not None:
        params["ip"] = str(criteria.ip)
    if criteria.peer is not None:
        params["peer"] = str(criteria.peer)
    parts = ["f.ts_start >= %(start)s", "f.ts_start < %(end)s"]
    if criteria.protocol is not None:
        parts.append("f.protocol = %(protocol)s")
        params["protocol"] = criteria.protocol
    if criteria.ports:
        columns = {"src": ["f.src_port"], "dst": ["f.dst_port"], "either": ["f.src_port", "f.dst_port"]}
        alternatives = []
        for i, (low, high) in enumerate(criteria.ports):
            params[f"port_lo{i}"], params[f"port_hi{i}"] = low, high
            for column in columns[criteria.port_side]:
                alternatives.append(f"{column} between %(port_lo{i})s and %(port_hi{i})s")
        parts.append("(" + " or ".join(alternatives) + ")")
    if scope is not None:
        for i, (network, start, end, carved) in enumerate(scope):
            params[f"s{i}p"], params[f"s{i}f"], params[f"s{i}t"] = str(network), start, end
            for j, (nested, nested_start, nested_end) in enumerate(carved):
                params[f"s{i}x{j}p"], params[f"s{i}x{j}f"], params[f"s{i}x{j}t"] = str(nested), nested_start, nested_end
        if criteria.ip is not None:  # the address search picks the rows; the scope filters them
            parts.append(f"({_scope_side(scope, 'src')} or {_scope_side(scope, 'dst')})")
    return " and ".join(parts), params


# --- pages ------------------------------------------------------------------------------
_ORDER_KEYS = {
    "newest": ("f.ts_start desc, f.ctid desc", "p.ts_start desc, p.rid desc"),
    "bytes": ("f.bytes desc, f.ts_start desc, f.ctid desc", "p.bytes desc, p.ts_start desc, p.rid desc"),
}


def encode_cursor(row, order: str) -> str:
    key = f"{row.ts_start.isoformat()}~{row.rid}"
    return f"{row.bytes}~{key}" if order == "bytes" else key


def _cursor_condition(cursor: str, order: str, params: dict) -> str:
    """The keyset condition "after this row"; raises ValueError for a cursor not made by us."""
    parts = cursor.split("~")
    try:
        if order == "bytes":
            if len(parts) != 3:
                raise ValueError
            params["k_bytes"] = int(parts[0])
            parts = parts[1:]
        if len(parts) != 2:
            raise ValueError
        params["k_ts"] = datetime.fromisoformat(parts[0])
        block, item = parts[1].strip("()").split(",")
        params["k_rid"] = f"({int(block)},{int(item)})"
    except ValueError:
        raise ValueError("The page position is not valid; start the search again.") from None
    if order == "bytes":
        return ("f.bytes <= %(k_bytes)s and (f.bytes, f.ts_start, f.ctid) < "
                "(%(k_bytes)s, %(k_ts)s, cast(%(k_rid)s as tid))")
    return "f.ts_start <= %(k_ts)s and (f.ts_start, f.ctid) < (%(k_ts)s, cast(%(k_rid)s as tid))"


def page_sql(criteria: Criteria, order: str = "newest", cursor: str | None = None,
             size: int | None = PAGE_SIZE, scope=None) -> tuple[str, dict]:
    """The SELECT of one page (``size`` rows and one more to tell whether a next page exists),
    or of the whole result when ``size`` is None."""
    inner_order, outer_order = _ORDER_KEYS[order]
    where, params = common_conditions(criteria, scope)
    if cursor:
        where += " and " + _cursor_condition(cursor, order, params)
    limit = ""
    if size is not None:
        params["limit"] = size + 1
        limit = " limit %(limit)s"
    selects = [
        f"(select {_FLOW_COLUMNS} from ispflow.flows f where {where} and {branch} order by {inner_order}{limit})"
        for branch in branches(criteria, scope)
    ]
    sql = (
        f"select {_NAMED} from ("
        + " union all ".join(selects)
        + ") p left join ispflow.holders h on h.id = p.holder left join ispflow.exporters e on e.id = p.exporter_id "
        + f"order by {outer_order}{limit}"
    )
    return sql, params


def fetch_page(conn, criteria: Criteria, order: str = "newest", cursor: str | None = None,
               size: int = PAGE_SIZE) -> Page:
    """One page of matching flows and the cursor of the next one (None on the last page).

    ``conn`` is a SQLAlchemy Connection; the SQL goes to psycopg2 as it is. Newest-first pages
    are looked for in time slices going back from the newest moment, each four times as long
    as the one before: a first page then plans and reads only the few daily chunks it needs
    instead of every chunk of a six-month window.
    """
    without_jit(conn)
    scope = subscriber_scope(conn, criteria)
    if order != "newest":
        rows = list(conn.exec_driver_sql(*page_sql(criteria, order, cursor, size, scope)))
    else:
        rows = []
        end = criteria.end
        if cursor:
            _cursor_condition(cursor, order, bounds := {})
            end = min(end, bounds["k_ts"] + timedelta(microseconds=1))
        slice_start = datetime.combine((end - timedelta(microseconds=1)).astimezone(timezone.utc).date(),
                                       time(), timezone.utc)
        span = end - slice_start
        while end > criteria.start and len(rows) <= size:
            start = max(criteria.start, end - span)
            part = replace(criteria, start=start, end=end)
            rows += conn.exec_driver_sql(*page_sql(part, order, cursor, size - len(rows), scope)).all()
            end, span = start, max(span * 4, timedelta(days=1))
    more = len(rows) > size
    rows = rows[:size]
    return Page(rows, encode_cursor(rows[-1], order) if more else None)


def all_rows(conn, criteria: Criteria, order: str = "newest") -> list:
    """The whole result in one query (the CLI's table, measurements).

    Everything is read anyway, so the branches are OR-ed into one scan: half the chunk scans
    to plan (measured ~40 % faster than UNION ALL for one subscriber's month).
    """
    without_jit(conn)
    scope = subscriber_scope(conn, criteria)
    where, params = common_conditions(criteria, scope)
    sql = (f"select {_NAMED} from (select {_FLOW_COLUMNS} from ispflow.flows f "
           f"where {where} and ({address_condition(criteria, scope)})) p "
           "left join ispflow.holders h on h.id = p.holder left join ispflow.exporters e on e.id = p.exporter_id "
           f"order by {_ORDER_KEYS[order][1]}")
    return conn.exec_driver_sql(sql, params).all()


def address_condition(criteria: Criteria, scope=None) -> str:
    """The address part of the search as one condition."""
    return " or ".join(f"({branch})" for branch in branches(criteria, scope))


def totals(conn, criteria: Criteria) -> Totals:
    """Flows, bytes and packets of the whole result, not just a page."""
    without_jit(conn)
    scope = subscriber_scope(conn, criteria)
    where, params = common_conditions(criteria, scope)
    sql = ("select count(*), coalesce(sum(f.bytes), 0), coalesce(sum(f.packets), 0) from ispflow.flows f "
           f"where {where} and ({address_condition(criteria, scope)})")
    flows, total_bytes, packets = conn.exec_driver_sql(sql, params).one()
    return Totals(int(flows), int(total_bytes), int(packets))
