"""Bandwidth over time for an address, prefix, account, service, exporter interface or the network.

A series is read from the 5-minute roll-ups up to their watermark and from the raw flows
after it (split into buckets the same way), so a graph is complete up to now. Periods of up to
two hours are drawn at 1-minute resolution from the raw flows. Peak, average and the 95th
percentile are always taken over 5-minute samples, per direction, every 5-minute interval of
the period counting (a quiet interval is a zero sample), as transit is billed.

"in" and "out" are seen from the subscriber (in = towards the subscriber) for addresses,
prefixes, accounts, services and the network; for an exporter interface "in" is what
entered the router on it and "out" what left on it.
"""
from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from . import rollups

SAMPLE = rollups.STEP
KINDS = ("address", "account", "service", "interface", "network")
PERIODS = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(days=7),
           "month": timedelta(days=30)}
MAX_RANGE = timedelta(days=400)
MAX_POINTS = 2000


class ScopeError(ValueError):
    """The graph asked for cannot be drawn; the message says why."""


@dataclass(frozen=True)
class Scope:
    """Whose traffic: one of KINDS with its value. ``account`` set together with an address
    restricts the address's traffic to what was stamped with that account (a customer's view)."""

    kind: str
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    account: str | None = None
    service: str | None = None
    exporter_id: int | None = None
    if_index: int | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ScopeError(f"unknown graph kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        needed = {"address": self.network, "account": self.account, "service": self.service,
                  "interface": self.exporter_id, "network": True}[self.kind]
        if needed is None:
            raise ScopeError(f"a {self.kind} graph needs its {self.kind}")

    @property
    def perspective(self) -> str:
        if self.kind == "interface":
            return "in: entering the router on the interface; out: leaving it"
        return "in: towards the subscriber (download); out: from the subscriber (upload)"

    def label(self) -> str:
        if self.kind == "address":
            return str(self.network.network_address) if self.network.num_addresses == 1 else str(self.network)
        if self.kind == "interface":
            return f"exporter {self.exporter_id}" + (f" interface {self.if_index}" if self.if_index is not None else "")
        return {"account": f"account {self.account}", "service": f"service {self.service}",
                "network": "whole network"}[self.kind]

    def to_json(self) -> dict:
        data = {"kind": self.kind, "network": str(self.network) if self.network else None, "account": self.account,
                "service": self.service, "exporter_id": self.exporter_id, "if_index": self.if_index}
        return {k: v for k, v in data.items() if v is not None}


@dataclass(frozen=True)
class DirectionStats:
    volume_bytes: int
    peak_bps: float
    average_bps: float
    p95_bps: float


@dataclass
class Series:
    scope: Scope
    start: datetime
    end: datetime
    step: timedelta
    buckets: list[datetime]
    bytes_in: list[int]
    bytes_out: list[int]
    stats: dict[str, DirectionStats] = field(default_factory=dict)
    rolled_up_until: datetime | None = None

    def rate(self, direction: str) -> list[float]:
        seconds = self.step.total_seconds()
        return [b * 8 / seconds for b in (self.bytes_in if direction == "in" else self.bytes_out)]

    def to_json(self, zone=None) -> dict:
        def moment(value):
            return (value.astimezone(zone) if zone else value).isoformat()

        return {
            "scope": self.scope.to_json(), "label": self.scope.label(), "perspective": self.scope.perspective,
            "start": moment(self.start), "end": moment(self.end), "step_seconds": int(self.step.total_seconds()),
            "time": [int(b.timestamp()) for b in self.buckets],
            "in_bps": self.rate("in"), "out_bps": self.rate("out"),
            "stats": {d: vars(s) for d, s in self.stats.items()},
            "rolled_up_until": moment(self.rolled_up_until) if self.rolled_up_until else None,
        }


def percentile95(samples: list[float]) -> float:
    """The 95th percentile the way bandwidth is billed: sort, drop the top 5 %, take the highest left.

    That is the nearest-rank percentile: the ceil(0.95·n)-th smallest sample.
    """
    if not samples:
        return 0.0
    ordered = sorted(samples)
    return ordered[max(math.ceil(0.95 * len(ordered)) - 1, 0)]


def resolution(span: timedelta) -> timedelta:
    """The step a period is drawn at: 1 min up to 2 h, 5 min up to 2 days, 30 min up to 2 weeks,
    then 2 h; coarser still when that would give more than MAX_POINTS points."""
    for limit, step in ((timedelta(hours=2), timedelta(minutes=1)), (timedelta(days=2), timedelta(minutes=5)),
                        (timedelta(days=14), timedelta(minutes=30))):
        if span <= limit:
            return step
    step = timedelta(hours=2)
    while span / step > MAX_POINTS:
        step *= 2
    return step


def parse_step(text: str) -> timedelta:
    """'1m', '5m', '30m', '2h', '1d' as a step; a roll-up period must be whole minutes."""
    text = (text or "").strip().lower()
    units = {"m": 60, "h": 3600, "d": 86400}
    if len(text) < 2 or text[-1] not in units or not text[:-1].isdigit() or int(text[:-1]) == 0:
        raise ScopeError(f"step {text!r} is not a duration such as 1m, 5m, 30m, 2h or 1d")
    return timedelta(seconds=int(text[:-1]) * units[text[-1]])


# --- SQL -------------------------------------------------------------------------------
def _rollup_source(scope: Scope, params: dict) -> str:
    """The roll-up rows (bucket, direction, bytes) of the scope."""
    if scope.kind == "network":
        return "select bucket, direction, bytes from ispflow.rollup_network_5m where direction is not null"
    if scope.kind == "service":
        params["service"] = scope.service
        return ("select bucket, direction, bytes from ispflow.rollup_network_5m "
                "where direction is not null and service = %(service)s")
    if scope.kind == "interface":
        params["exporter_id"] = scope.exporter_id
        where = "exporter_id = %(exporter_id)s"
        if scope.if_index is not None:
            params["if_index"] = scope.if_index
            where += " and if_index = %(if_index)s"
        return f"select bucket, direction, bytes from ispflow.rollup_interface_5m where {where}"
    if scope.account is None and scope.network.prefixlen <= rollups.PREFIX_BITS[scope.network.version]:
        # Whole /24 (/48) blocks: their sums, not every subscriber address's rows.
        params["network"] = str(scope.network)
        return ("select bucket, direction, bytes from ispflow.rollup_prefix_5m "
                "where prefix <<= cast(%(network)s as cidr)")
    parts = []
    if scope.account is not None:
        params["account"] = scope.account
        parts.append("account = %(account)s")
    if scope.network is not None:
        params["network"] = str(scope.network)
        parts.append("address <<= cast(%(network)s as inet)" if scope.network.num_addresses > 1
                     else "address = cast(%(network)s as inet)")
    return f"select bucket, direction, bytes from ispflow.rollup_traffic_5m where {' and '.join(parts)}"


def _raw_source(scope: Scope, params: dict) -> str:
    """The raw flows of the scope as (ts_start, ts_end, bytes, packets, direction)."""
    columns = "f.ts_start, f.ts_end, f.bytes, f.packets"
    # Flows that started up to MAX_SPAN earlier reach into the period; of those, only the ones
    # still running at its start have a piece in it.
    window = (f"f.ts_start >= %(raw_from)s - interval '{int(rollups.MAX_SPAN.total_seconds())} seconds' "
              "and f.ts_start < %(end)s and (f.ts_start >= %(raw_from)s or f.ts_end > %(raw_from)s)")
    if scope.kind == "interface":
        params["exporter_id"] = scope.exporter_id
        match = "f.exporter_id = %(exporter_id)s"
        if scope.if_index is not None:
            params["if_index"] = scope.if_index
            return (f"select {columns}, 'in' as direction from ispflow.flow_records f where {window} and {match} "
                    f"and f.in_if = %(if_index)s union all "
                    f"select {columns}, 'out' from ispflow.flow_records f where {window} and {match} and f.out_if = %(if_index)s")
        return (f"select {columns}, 'in' as direction from ispflow.flow_records f where {window} and {match} and f.in_if is not null "
                f"union all select {columns}, 'out' from ispflow.flow_records f where {window} and {match} and f.out_if is not null")
    parts = [window, "f.direction is not null"]
    if scope.kind == "service":
        params["service"] = scope.service
        parts.append("f.service = %(service)s")
    if scope.account is not None:
        params["account"] = scope.account
        parts.append("f.account = %(account)s")
    if scope.network is not None:
        params["network"] = str(scope.network)
        op = "<<=" if scope.network.num_addresses > 1 else "="
        parts.append(f"((f.direction = 'in' and f.dst_addr {op} cast(%(network)s as inet)) or "
                     f"(f.direction = 'out' and f.src_addr {op} cast(%(network)s as inet)))")
    return f"select {columns}, f.direction from ispflow.flow_records f where {' and '.join(parts)}"


# Per bucket: its start in epoch seconds, bytes in, bytes out (one row per bucket, so a month
# of 5-minute samples is 8,640 rows to fetch, not twice as many).
_PIVOT = ("select extract(epoch from bucket)::bigint, "
          "coalesce(sum(bytes) filter (where direction = 'in'), 0)::bigint, "
          "coalesce(sum(bytes) filter (where direction = 'out'), 0)::bigint")


def _raw_buckets(conn, scope: Scope, start: datetime, end: datetime, step: timedelta) -> dict:
    params = {"raw_from": start, "end": end, "step": step, "from": start}
    source = _raw_source(scope, params)
    sql = (f"{_PIVOT} from ({rollups.split_sql(source, '%(step)s', 'direction')}) p "
           f"where bucket >= %(from)s and bucket < %(end)s group by 1")
    return _collect(conn, sql, params)


def _rollup_buckets(conn, scope: Scope, start: datetime, end: datetime) -> dict:
    params = {"from": start, "end": end}
    sql = (f"{_PIVOT} from ({_rollup_source(scope, params)}) r "
           f"where bucket >= %(from)s and bucket < %(end)s group by 1")
    return _collect(conn, sql, params)


def _collect(conn, sql: str, params: dict) -> dict[int, list[int]]:
    """{epoch seconds: [bytes in, bytes out]}, fetched as plain tuples (no row objects)."""
    return {bucket: [inbound, outbound] for bucket, inbound, outbound in rollups.fetch_all(conn, sql, params)}


def five_minute_samples(conn, scope: Scope, start: datetime, end: datetime, done: datetime | None) -> dict:
    """{epoch seconds: [bytes in, bytes out]} per 5-minute bucket in [start, end): roll-ups, then raw flows."""
    boundary = min(max(done or start, start), end)
    samples = _rollup_buckets(conn, scope, start, boundary) if boundary > start else {}
    if boundary < end:
        samples.update(_raw_buckets(conn, scope, boundary, end, SAMPLE))
    return samples


def series(conn, scope: Scope, start: datetime, end: datetime, step: timedelta | None = None) -> Series:
    """The series of ``scope`` over ``[start, end)`` (widened to whole 5-minute samples) and its stats.

    ``conn`` is a SQLAlchemy connection.
    """
    start = rollups.floor_time(start, SAMPLE)
    end = rollups.floor_time(end - timedelta(microseconds=1), SAMPLE) + SAMPLE
    if end <= start:
        raise ScopeError("the end of the period must be later than its start")
    if end - start > MAX_RANGE:
        raise ScopeError(f"a graph covers at most {MAX_RANGE.days} days")
    step = step or resolution(end - start)
    if (end - start) / step > 20 * MAX_POINTS:
        raise ScopeError("that step gives too many points for the period; choose a longer step")
    rollups.for_aggregates(conn)
    done = rollups.watermark(conn)
    first = rollups.floor_time(start, step)
    if step < SAMPLE and SAMPLE % step == timedelta(0):
        # Finer than the samples (short periods): one pass over the raw flows. A sample is the
        # sum of its finer buckets, exactly, because a flow's pieces telescope.
        fine = _raw_buckets(conn, scope, first, end, step)
        samples = _coarsened(fine, SAMPLE)
    else:
        samples = five_minute_samples(conn, scope, start, end, done)
        fine = samples if step % SAMPLE == timedelta(0) else _raw_buckets(conn, scope, first, end, step)
    width, origin = int(step.total_seconds()), int(first.timestamp())
    count = -(-int((end - first).total_seconds()) // width)
    bytes_in, bytes_out = [0] * count, [0] * count
    for bucket, (inbound, outbound) in fine.items():
        index = (bucket - origin) // width
        if 0 <= index < count:
            bytes_in[index] += inbound
            bytes_out[index] += outbound
    buckets = [first + i * step for i in range(count)]
    result = Series(scope, start, end, step, buckets, bytes_in, bytes_out, rolled_up_until=done)
    result.stats = statistics(samples, start, end)
    return result


def _coarsened(buckets: dict, width: timedelta) -> dict:
    """{epoch seconds: [bytes in, bytes out]} summed into ``width``-long buckets."""
    seconds, out = int(width.total_seconds()), {}
    for bucket, (inbound, outbound) in buckets.items():
        total = out.setdefault(bucket - bucket % seconds, [0, 0])
        total[0] += inbound
        total[1] += outbound
    return out


def statistics(samples: dict, start: datetime, end: datetime) -> dict[str, DirectionStats]:
    """Volume, peak, average and 95th percentile per direction from 5-minute byte counts
    ({epoch seconds: [bytes in, bytes out]})."""
    count = int((end - start) / SAMPLE)
    seconds = SAMPLE.total_seconds()
    low, high = int(start.timestamp()), int(end.timestamp())
    inside = [values for bucket, values in samples.items() if low <= bucket < high]
    stats = {}
    for index, direction in enumerate(("in", "out")):
        values = [v[index] for v in inside]
        rates = [v * 8 / seconds for v in values] + [0.0] * (count - len(values))
        volume = sum(values)
        stats[direction] = DirectionStats(volume, max(rates, default=0.0),
                                          volume * 8 / (end - start).total_seconds(), percentile95(rates))
    return stats


# --- numbers for people ---------------------------------------------------------------
def human_rate(bps: float) -> str:
    """Bit/s with decimal prefixes: '12.3 Mbit/s'."""
    return _decimal(bps, "bit/s")


def _decimal(value: float, unit: str) -> str:
    for prefix in ("", "k", "M", "G", "T", "P"):
        if abs(value) < 1000 or prefix == "P":
            return f"{value:.0f} {prefix}{unit}" if prefix == "" else f"{value:.3g} {prefix}{unit}"
        value /= 1000
    return f"{value} {unit}"
