"""The roll-ups of a set of flows computed from numpy columns: what the collector adds to the
roll-up tables for the flows it stored, without reading them back from the database.

Every rule is ``rollups.build``'s (bucket split, service port, leaders and remainders, shallow
account-hours); the tests hold the two to the same rows. Grouping is by sorting integer keys:
addresses and names are first replaced by dense codes in PostgreSQL's order (so ties between
talkers are broken as ``build`` breaks them), then a group's key is one mixed-radix integer.
Counters are summed in int64 by ``reduceat`` on the sorted rows, so sums are exact.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from . import rollups

STEP_US = int(rollups.STEP.total_seconds()) * 1_000_000
HOUR_US = 3_600_000_000
MAX_SPAN_US = int(rollups.MAX_SPAN.total_seconds()) * 1_000_000
_SAFE = 2**62                  # a mixed-radix key stays below this
_TRANSPORTS = (6, 17, 132)     # protocols with ports (rollups.SERVICE_PORT)
_DYNAMIC_PORTS = 49152


@dataclass
class FlowColumns:
    """Stored flows as the roll-ups need them. Names are indexes into the caller's ``accounts``
    and ``services`` lists (-1: none); ``direction`` 0 none, 1 in, 2 out; interfaces -1 when
    not stored; addresses 16-byte rows as in ``collector.batches``."""

    ts_start: np.ndarray
    ts_end: np.ndarray
    bytes: np.ndarray
    packets: np.ndarray
    family: np.ndarray
    src_addr: np.ndarray
    dst_addr: np.ndarray
    src_port: np.ndarray
    dst_port: np.ndarray
    protocol: np.ndarray
    in_if: np.ndarray
    out_if: np.ndarray
    exporter_id: np.ndarray
    account: np.ndarray
    service: np.ndarray
    direction: np.ndarray

    def __len__(self) -> int:
        return len(self.ts_start)

    def take(self, rows) -> "FlowColumns":
        return FlowColumns(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})

    @staticmethod
    def concat(parts: list["FlowColumns"]) -> "FlowColumns":
        return FlowColumns(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(FlowColumns)})


@dataclass
class Rows:
    """Rows for one roll-up table: its columns (``pgcopy.Column``) in the table's order."""

    table: str
    columns: list

    def __len__(self) -> int:
        return len(self.columns[0].values)


# --- grouping ------------------------------------------------------------------------------

def _factorize(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(dense codes in ascending key order, index of one row per code)."""
    if not len(keys):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    order = np.argsort(keys)
    ordered = keys[order]
    new = np.empty(len(keys), dtype=bool)
    new[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new[1:])
    codes = np.empty(len(keys), dtype=np.int64)
    codes[order] = np.cumsum(new) - 1
    return codes, order[new]


def _big_endian(rows: np.ndarray, start: int, size: int) -> np.ndarray:
    """Bytes ``start:start+size`` of each 16-byte row as one unsigned big-endian number."""
    dtype = ">u4" if size == 4 else ">u8"
    return np.ascontiguousarray(rows[:, start:start + size]).view(dtype).ravel().astype(np.uint64)


def address_codes(family: np.ndarray, *columns: np.ndarray) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Dense codes of the 16-byte addresses of ``columns`` (all of one length, sharing ``family``)
    in PostgreSQL's inet order (IPv4 first, then by value): the codes of each column, and per
    code its family and address row."""
    n = len(family)
    if not n:
        return [np.zeros(0, np.int64) for _ in columns], np.zeros(0, np.uint8), np.zeros((0, 16), np.uint8)
    v4 = np.flatnonzero(family == 4)
    v6 = np.flatnonzero(family != 4)
    codes = [np.zeros(n, dtype=np.int64) for _ in columns]
    families, rows = [], []
    if len(v4):
        keys = np.concatenate([_big_endian(column[v4], 0, 4) for column in columns])
        c4, f4 = _factorize(keys)
        for i in range(len(columns)):
            codes[i][v4] = c4[i * len(v4):(i + 1) * len(v4)]
        which, at = np.divmod(f4, len(v4))
        rows.append(_gather(columns, v4, which, at))
        families.append(np.full(len(f4), 4, dtype=np.uint8))
    if len(v6):
        hi = np.concatenate([_big_endian(column[v6], 0, 8) for column in columns])
        lo = np.concatenate([_big_endian(column[v6], 8, 8) for column in columns])
        order = np.lexsort((lo, hi))
        new = np.r_[True, (hi[order][1:] != hi[order][:-1]) | (lo[order][1:] != lo[order][:-1])]
        c6 = np.empty(len(hi), dtype=np.int64)
        c6[order] = np.cumsum(new) - 1 + sum(len(r) for r in rows)
        for i in range(len(columns)):
            codes[i][v6] = c6[i * len(v6):(i + 1) * len(v6)]
        which, at = np.divmod(order[new], len(v6))
        rows.append(_gather(columns, v6, which, at))
        families.append(np.full(int(new.sum()), 6, dtype=np.uint8))
    return codes, np.concatenate(families), np.concatenate(rows)


def _gather(columns, rows_of_family, which, at) -> np.ndarray:
    out = np.empty((len(which), 16), dtype=np.uint8)
    for i, column in enumerate(columns):
        mine = np.flatnonzero(which == i)
        out[mine] = column[rows_of_family[at[mine]]]
    return out


def _small_codes(values: np.ndarray) -> np.ndarray:
    """Codes for a column of small numbers (exporter ids, interface indexes; -1 for none): the
    values themselves, shifted, when they span less than 2^20, else dense codes."""
    low, high = int(values.min()), int(values.max())
    if high - low < 1 << 20:
        return values.astype(np.int64) - low
    return _factorize(values.astype(np.int64))[0]


def group(keys: list[tuple[np.ndarray, int]], sums: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Rows grouped by ``keys`` (codes in ``range(cardinality)``), in key order: one row index
    per group and the groups' sums of each array in ``sums``."""
    combined = np.zeros(len(sums[0]), dtype=np.int64)
    size = 1
    for codes, cardinality in keys:
        cardinality = max(int(cardinality), 1)
        if size * cardinality >= _SAFE:
            combined, _ = _factorize(combined)
            size = int(combined.max()) + 1 if len(combined) else 1
        combined = combined * cardinality + codes
        size *= cardinality
    if not len(combined):
        return np.zeros(0, np.int64), [np.zeros(0, np.int64) for _ in sums]
    order = np.argsort(combined)
    ordered = combined[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    return order[starts], [np.add.reduceat(values[order], starts) for values in sums]


# --- the flows' pieces per 5-minute bucket -------------------------------------------------

@dataclass
class Pieces:
    flow: np.ndarray      # the flow each piece comes from
    bucket: np.ndarray    # µs since the epoch
    bytes: np.ndarray
    packets: np.ndarray
    flows: np.ndarray     # 1 in the bucket the flow starts in


def _share(count: np.ndarray, elapsed: np.ndarray, span: np.ndarray) -> np.ndarray:
    """floor(count * elapsed / span), exact in 64 bits (elapsed <= span <= MAX_SPAN)."""
    quotient, remainder = np.divmod(count, span)
    return quotient * elapsed + ((remainder.astype(np.uint64) * elapsed.astype(np.uint64))
                                 // span.astype(np.uint64)).astype(np.int64)


def pieces(c: FlowColumns) -> Pieces:
    """Each flow spread over the 5-minute buckets it overlaps, as ``rollups.split_sql`` does."""
    start = c.ts_start
    end = np.maximum(start, np.minimum(c.ts_end, start + MAX_SPAN_US))
    first = start // STEP_US * STEP_US
    last = np.maximum(start, end - 1) // STEP_US * STEP_US
    count = (last - first) // STEP_US + 1
    flow = np.repeat(np.arange(len(start)), count)
    offset = np.arange(len(flow)) - np.repeat(np.cumsum(count) - count, count)
    bucket = first[flow] + offset * STEP_US
    split = np.flatnonzero((count > 1)[flow])   # most flows lie in one bucket: no shares to compute
    f, b = flow[split], bucket[split]
    span = np.maximum(end - start, 1)[f]
    low = np.maximum(start[f], b) - start[f]
    high = np.minimum(end[f], b + STEP_US) - start[f]

    def spread(total):
        pieces_ = total[flow]
        t = pieces_[split]
        pieces_[split] = _share(t, high, span) - _share(t, low, span)
        return pieces_

    return Pieces(flow, bucket, spread(c.bytes), spread(c.packets), (offset == 0).astype(np.int64))


def service_port(c: FlowColumns) -> np.ndarray:
    """``rollups.SERVICE_PORT``: the lower non-zero port when below the dynamic range, else 0."""
    big = np.int64(1 << 20)
    src = np.where(c.src_port != 0, c.src_port, big).astype(np.int64)
    dst = np.where(c.dst_port != 0, c.dst_port, big).astype(np.int64)
    low = np.minimum(src, dst)
    port = np.where(low < _DYNAMIC_PORTS, low, 0)
    return np.where(np.isin(c.protocol, _TRANSPORTS), port, 0)


# --- the tables ----------------------------------------------------------------------------

def compute(c: FlowColumns, accounts: list[str], services: list[str], shallow_skip: bool = True) -> list[Rows]:
    """Every roll-up table's rows for the flows ``c`` (all of them, whatever hours they start in).

    With ``shallow_skip`` an account-hour of at most ``rollups.SHALLOW`` flows gets its raw
    marker instead of talker and application rows (``build``'s rule); without, every account-hour gets talkers
    (late flows written with their batch: a few flows of an hour whose account may be heavy).
    """
    from ..collector.pgcopy import Column

    if not len(c):
        return []
    n_accounts, n_services = len(accounts) + 1, len(services) + 1
    account, service = c.account.astype(np.int64) + 1, c.service.astype(np.int64) + 1
    direction = c.direction.astype(np.int64)

    (src, dst), families, addresses = address_codes(c.family, c.src_addr, c.dst_addr)
    n = len(c)
    n_addresses = len(families)

    p = pieces(c)
    base = int(p.bucket.min()) if len(p.bucket) else 0
    bucket_code = (p.bucket - base) // STEP_US
    n_buckets = int(bucket_code.max()) + 1
    sums = [p.bytes, p.packets, p.flows]
    out: list[Rows] = []

    def address_column(code, present=None):
        return Column("inet", addresses[code], present=present, family=families[code])

    def text_column(index, strings):
        return Column("text", index - 1, strings=strings)

    def direction_column(index):
        return Column("text", index - 1, strings=["in", "out"])

    def counters(values):
        return [Column("int8", values[0]), Column("int8", values[1]), Column("int8", values[2])]

    # The pieces summed per bucket and finest key (build's rollup_cells): every 5-minute table
    # regroups these, a few per address and bucket, instead of one piece per flow.
    f = p.flow
    side = np.where(direction == 1, dst, np.where(direction == 2, src, -1)) + 1   # 0: no subscriber side
    exporter, in_code, out_code = _small_codes(c.exporter_id), _small_codes(c.in_if), _small_codes(c.out_if)
    cells, csums = group([(bucket_code, n_buckets), (side[f], n_addresses + 1), (account[f], n_accounts),
                          (service[f], n_services), (direction[f], 3), (exporter[f], int(exporter.max()) + 1),
                          (in_code[f], int(in_code.max()) + 1), (out_code[f], int(out_code.max()) + 1)], sums)
    cf = f[cells]
    c_bucket, c_time, c_side = bucket_code[cells], p.bucket[cells], side[cf]
    c_account, c_service, c_direction = account[cf], service[cf], direction[cf]

    # rollup_traffic_5m: the subscriber side of attributed flows, per address and bucket.
    sel = np.flatnonzero(c_direction != 0)
    rows, totals = group([(c_side[sel], n_addresses + 1), (c_account[sel], n_accounts),
                          (c_service[sel], n_services), (c_direction[sel], 3), (c_bucket[sel], n_buckets)],
                         [x[sel] for x in csums])
    rows = sel[rows]
    traffic_address = c_side[rows] - 1
    out.append(Rows("rollup_traffic_5m", [
        Column("timestamptz", c_time[rows]), address_column(traffic_address),
        text_column(c_account[rows], accounts), text_column(c_service[rows], services),
        direction_column(c_direction[rows]), *counters(totals)]))

    # rollup_prefix_5m: the same per /24 or /48.
    masked = addresses[traffic_address].copy()
    v4 = families[traffic_address] == 4
    masked[v4, 3:] = 0
    masked[~v4, 6:] = 0
    prefix_family = families[traffic_address]
    (prefix,), prefix_families, _ = address_codes(prefix_family, masked)
    t_direction = c_direction[rows]
    prows, ptotals = group([(c_bucket[rows], n_buckets), (prefix, len(prefix_families)), (t_direction, 3)], totals)
    out.append(Rows("rollup_prefix_5m", [
        Column("timestamptz", c_time[rows][prows]),
        Column("cidr", masked[prows], family=prefix_family[prows], bits=np.where(v4[prows], 24, 48)),
        direction_column(t_direction[prows]), *counters(ptotals)]))

    # rollup_network_5m: every flow, per service and direction.
    nrows, ntotals = group([(c_bucket, n_buckets), (c_service, n_services), (c_direction, 3)], csums)
    out.append(Rows("rollup_network_5m", [
        Column("timestamptz", c_time[nrows]), text_column(c_service[nrows], services),
        Column("text", c_direction[nrows] - 1, present=c_direction[nrows] != 0, strings=["in", "out"]),
        *counters(ntotals)]))

    # rollup_interface_5m: in on the input interface, out on the output one.
    parts = []
    for label, interface, codes_ in ((1, c.in_if, in_code), (2, c.out_if, out_code)):
        sel = np.flatnonzero(interface[cf] >= 0)
        irows, itotals = group([(c_bucket[sel], n_buckets), (exporter[cf][sel], int(exporter.max()) + 1),
                                (codes_[cf][sel], int(codes_.max()) + 1)], [x[sel] for x in csums])
        irows = sel[irows]
        parts.append((irows, interface[cf][irows], np.full(len(irows), label), itotals))
    irows = np.concatenate([x[0] for x in parts])
    out.append(Rows("rollup_interface_5m", [
        Column("timestamptz", c_time[irows]), Column("int4", c.exporter_id[cf][irows]),
        Column("int4", np.concatenate([x[1] for x in parts])), direction_column(np.concatenate([x[2] for x in parts])),
        *counters([np.concatenate([parts[0][3][i], parts[1][3][i]]) for i in range(3)])]))

    # rollup_accounts_1h: the pieces' hours, per account, service and direction.
    hour = c_time // HOUR_US * HOUR_US
    hour_code = (hour - hour.min()) // HOUR_US
    sel = np.flatnonzero((c_account > 0) & (c_direction != 0))
    arows, atotals = group([(hour_code[sel], int(hour_code.max()) + 1), (c_account[sel], n_accounts),
                            (c_service[sel], n_services), (c_direction[sel], 3)], [x[sel] for x in csums])
    arows = sel[arows]
    out.append(Rows("rollup_accounts_1h", [
        Column("timestamptz", hour[arows]), text_column(c_account[arows], accounts),
        text_column(c_service[arows], services), direction_column(c_direction[arows]), *counters(atotals)]))

    # Hourly tables by the hour each flow starts in.
    start_hour = c.ts_start // HOUR_US * HOUR_US
    shour = (start_hour - start_hour.min()) // HOUR_US
    n_hours = int(shour.max()) + 1
    flow_sums = [c.bytes, c.packets, np.ones(n, dtype=np.int64)]
    # Flows of light account-hours (at most rollups.SHALLOW flows): reports read those hours raw.
    shallow = np.zeros(n, dtype=bool)
    if shallow_skip:
        attributed = np.flatnonzero(account > 0)
        hour_account, _ = _factorize(shour[attributed] * n_accounts + account[attributed])
        shallow[attributed] = (np.bincount(hour_account) <= rollups.SHALLOW)[hour_account]
    out.append(_apps(c, start_hour, shour, n_hours, account, n_accounts, accounts, flow_sums, shallow))
    out += _talkers(start_hour, shour, n_hours, account, n_accounts, accounts, src, dst, n_addresses,
                    addresses, families, flow_sums, shallow)
    return [rows for rows in out if len(rows)]


def _apps(c, start_hour, shour, n_hours, account, n_accounts, accounts, flow_sums, shallow) -> Rows:
    """Per hour, service port and account (none for a light account-hour), and for the network."""
    from ..collector.pgcopy import Column

    port = service_port(c)
    port_code = port   # 0-65535: its own code
    protocol = c.protocol.astype(np.int64)
    n_ports = int(port_code.max()) + 1
    grow, gsums = group([(shour, n_hours), (account, n_accounts), (protocol, 256), (port_code, n_ports)], flow_sums)
    mine = np.flatnonzero((account[grow] > 0) & ~shallow[grow])
    every, every_sums = group([(shour[grow], n_hours), (protocol[grow], 256), (port_code[grow], n_ports)], gsums)
    rows = np.concatenate([grow[mine], grow[every]])
    return Rows("rollup_apps_1h", [
        Column("timestamptz", start_hour[rows]),
        Column("text", np.concatenate([account[grow[mine]] - 1, np.full(len(every), -1)]), strings=accounts),
        Column("int2", protocol[rows]), Column("int4", port[rows]),
        *[Column("int8", np.concatenate([gsums[i][mine], every_sums[i]])) for i in range(3)]])


_KINDS = (("source", True, False), ("destination", False, True), ("conversation", True, True))


def _talkers(start_hour, shour, n_hours, account, n_accounts, accounts, src, dst, n_addresses,
             addresses, families, flow_sums, shallow) -> list[Rows]:
    """``rollups._insert_talkers`` for the network (per hour) and each account (per hour)."""
    from ..collector.pgcopy import Column

    # The hour's pairs per account (null account included), as build's rollup_pairs.
    prow, psums = group([(shour, n_hours), (account, n_accounts), (src, n_addresses), (dst, n_addresses)], flow_sums)
    p_hour, p_account, p_src, p_dst = shour[prow], account[prow], src[prow], dst[prow]
    out = []
    for scope in ("network", "account"):
        per_account = scope == "account"
        sel = np.flatnonzero(p_account > 0) if per_account else np.arange(len(prow))
        shallow_rows = shallow[prow[sel]] if per_account else np.zeros(len(sel), dtype=bool)
        columns_of = {name: [] for name in ("hour", "account", "kind", "src", "dst", "raw", "b", "p", "f")}
        light_parts = None   # the light parts' totals: the same for every kind
        for kind_index, (kind, with_src, with_dst) in enumerate(_KINDS):
            # Deep parts: leaders and a remainder. Shallow parts: one remainder row, flagged raw.
            for light in (False, True):
                rows_in = sel[shallow_rows == light]
                if not len(rows_in):
                    continue
                keys = [(p_hour[rows_in], n_hours)] + ([(p_account[rows_in], n_accounts)] if per_account else [])
                if not light:
                    keys += ([(p_src[rows_in], n_addresses)] if with_src else []) + \
                        ([(p_dst[rows_in], n_addresses)] if with_dst else [])
                if light and light_parts is not None:
                    grow, gsums = light_parts
                else:
                    grow, gsums = group(keys, [x[rows_in] for x in psums])
                    grow = rows_in[grow]
                    if light:
                        light_parts = grow, gsums
                # group() returns rows in key order, the part's keys first: parts are contiguous.
                gpart = p_hour[grow] * n_accounts + p_account[grow] if per_account else p_hour[grow]
                starts = np.flatnonzero(np.r_[True, gpart[1:] != gpart[:-1]])
                part = np.cumsum(np.r_[True, gpart[1:] != gpart[:-1]]) - 1
                if light:
                    kept = np.zeros(len(grow), dtype=bool)
                else:
                    top = rollups.TOP_ACCOUNT if per_account else rollups.TOP_NETWORK
                    kept = _leaders(part, gsums[0], gsums[2], [k[grow] for k, w in ((p_src, with_src),
                                                                                   (p_dst, with_dst)) if w], top)
                keep = np.flatnonzero(kept)
                # Each part's remainder: its totals less its leaders, where anything is left.
                rest_sums = [np.add.reduceat(x, starts) - _part_sums(part[keep], x[keep], len(starts)) for x in gsums]
                left = np.bincount(part, minlength=len(starts)) > np.bincount(part[keep], minlength=len(starts))
                heads = grow[starts[left]]
                rows = np.concatenate([grow[keep], heads])
                columns_of["hour"].append(int(start_hour.min()) + p_hour[rows] * HOUR_US)
                columns_of["account"].append(p_account[rows])
                columns_of["kind"].append(np.full(len(rows), kind_index))
                null = np.r_[np.zeros(len(keep), bool), np.ones(len(heads), bool)]
                columns_of["src"].append(np.where(null | (not with_src), -1, p_src[rows]))
                columns_of["dst"].append(np.where(null | (not with_dst), -1, p_dst[rows]))
                columns_of["raw"].append(np.r_[np.zeros(len(keep), bool), np.full(len(heads), light)])
                for name, i in (("b", 0), ("p", 1), ("f", 2)):
                    columns_of[name].append(np.concatenate([gsums[i][keep], rest_sums[i][left]]))
        if not columns_of["hour"]:   # no attributed flows: no account has talkers
            continue
        merged = {name: np.concatenate(parts) for name, parts in columns_of.items()}
        src_all, dst_all = merged["src"], merged["dst"]
        columns = [Column("timestamptz", merged["hour"])]
        if per_account:
            columns.append(Column("text", merged["account"] - 1, strings=accounts))
        columns += [Column("text", merged["kind"], strings=[k[0] for k in _KINDS]),
                    Column("inet", addresses[np.maximum(src_all, 0)], family=np.where(src_all >= 0,
                           families[np.maximum(src_all, 0)], 0)),
                    Column("inet", addresses[np.maximum(dst_all, 0)], family=np.where(dst_all >= 0,
                           families[np.maximum(dst_all, 0)], 0)),
                    *[Column("int8", merged[name]) for name in ("b", "p", "f")]]
        if per_account:
            columns.append(Column("bool", merged["raw"]))
        out.append(Rows("rollup_account_talkers_1h" if per_account else "rollup_talkers_1h", columns))
    return out


def _part_sums(part: np.ndarray, values: np.ndarray, parts: int) -> np.ndarray:
    """Exact int64 sums of ``values`` per part (few rows: the leaders)."""
    sums = np.zeros(parts, dtype=np.int64)
    np.add.at(sums, part, values)
    return sums


_KEY_BITS = 40   # a counter above 2^40 - 1 ranks as 2^40 - 1 in the pre-selection (a superset)


def _leaders(part: np.ndarray, bytes_: np.ndarray, flows: np.ndarray, keys: list[np.ndarray], top: int) -> np.ndarray:
    """Rows among each part's ``top`` by (bytes, flows) or by (flows, bytes), descending, ties
    broken by the key codes ascending (``build``'s order)."""
    kept = np.zeros(len(part), dtype=bool)
    if not len(part):
        return kept
    ceiling = (1 << _KEY_BITS) - 1
    for first, second in ((bytes_, flows), (flows, bytes_)):
        # Pre-selection by one sort on (part, first descending): every row whose first counter
        # reaches the part's top-th value (ties at the cut and counters past the ceiling
        # included), then those few ordered exactly.
        if int(part.max()) >= 1 << (62 - _KEY_BITS):   # too many parts to pack: rank the counter
            rank, _ = _factorize(-first)
            order_key = part * (int(rank.max()) + 1) + rank
        else:
            order_key = (part << _KEY_BITS) + (ceiling - np.minimum(first, ceiling))
        parts = int(part.max()) + 1
        cut = np.empty(parts, dtype=np.int64)
        if parts <= 4:   # the network's hours: each part's cut by selection, no sort
            for p in range(parts):
                keys_of_part = order_key[part == p]
                cut[p] = np.partition(keys_of_part, min(top, len(keys_of_part)) - 1)[min(top, len(keys_of_part)) - 1]
        else:
            order = np.argsort(order_key)
            ordered_part = part[order]
            starts = np.flatnonzero(np.r_[True, ordered_part[1:] != ordered_part[:-1]])
            size = np.diff(np.r_[starts, len(order)])
            cut[ordered_part[starts]] = order_key[order[starts + np.minimum(size, top) - 1]]
        candidates = np.flatnonzero(order_key <= cut[part])
        exact = candidates[np.lexsort(tuple(k[candidates] for k in reversed(keys))
                                      + (-second[candidates], -first[candidates], part[candidates]))]
        cparts = part[exact]
        cstarts = np.flatnonzero(np.r_[True, cparts[1:] != cparts[:-1]])
        position = np.arange(len(exact)) - np.repeat(cstarts, np.diff(np.r_[cstarts, len(exact)]))
        kept[exact[position < top]] = True
    return kept
