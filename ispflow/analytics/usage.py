"""Usage for billing: per account and calendar month, the volume and the 95th percentile per direction.

The month runs from midnight of its first day to midnight of the next month's in the ISP's
time zone. The 95th percentile is over every 5-minute interval of the month (quiet ones are
zero samples), as ``bandwidth.statistics`` computes it for graphs, so the bill and the graph
agree.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from . import bandwidth, rollups

CSV_COLUMNS = ("account", "month", "bytes_in", "bytes_out", "p95_in_bps", "p95_out_bps", "p95_max_bps",
               "peak_in_bps", "peak_out_bps")


@dataclass(frozen=True)
class Usage:
    account: str
    month: str
    bytes_in: int
    bytes_out: int
    p95_in_bps: float
    p95_out_bps: float
    peak_in_bps: float
    peak_out_bps: float

    @property
    def p95_max_bps(self) -> float:
        """The higher of the two directions' 95th percentiles (the usual billed figure)."""
        return max(self.p95_in_bps, self.p95_out_bps)

    def to_json(self) -> dict:
        return {name: getattr(self, name) for name in CSV_COLUMNS}


def parse_month(text: str) -> date:
    """'2026-03' as the first day of that month."""
    try:
        year, month = (int(part) for part in (text or "").strip().split("-"))
        return date(year, month, 1)
    except ValueError:
        raise ValueError(f"month {text!r} is not a month such as 2026-03") from None


def month_bounds(month: date, zone) -> tuple[datetime, datetime]:
    following = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    return (datetime.combine(month, time(), zone).astimezone(timezone.utc),
            datetime.combine(following, time(), zone).astimezone(timezone.utc))


def monthly_usage(conn, month: date, zone, account: str | None = None) -> list[Usage]:
    """Usage of every account with traffic in ``month`` (or of ``account``), by account name."""
    start, end = month_bounds(month, zone)
    rollups.for_aggregates(conn)
    done = rollups.watermark(conn)
    boundary = min(max(done or start, start), end)
    per_account: dict[str, dict] = {}
    where = "account is not null" if account is None else "account = %(account)s"
    params = {"from": start, "until": boundary, "end": end, "account": account, "step": rollups.STEP}
    if boundary > start:
        _collect(per_account, rollups.fetch_all(conn, f"{_PIVOT} from ispflow.rollup_traffic_5m "
                 f"where {where} and bucket >= %(from)s and bucket < %(until)s group by 1, 2", params))
    if boundary < end:
        source = ("select f.ts_start, f.ts_end, f.bytes, f.packets, f.account, f.direction from ispflow.flow_records f "
                  f"where f.ts_start >= %(until)s - interval '1 hour' and f.ts_start < %(end)s "
                  f"and f.direction is not null and f.{where}")
        _collect(per_account, rollups.fetch_all(
            conn, f"{_PIVOT} from ({rollups.split_sql(source, '%(step)s', 'account, direction')}) p "
                  f"where bucket >= %(until)s and bucket < %(end)s group by 1, 2", params))
    label = month.strftime("%Y-%m")
    result = []
    for name in sorted(per_account):
        stats = bandwidth.statistics(per_account[name], start, end)
        result.append(Usage(name, label, stats["in"].volume_bytes, stats["out"].volume_bytes, stats["in"].p95_bps,
                            stats["out"].p95_bps, stats["in"].peak_bps, stats["out"].peak_bps))
    if account is not None and not result:
        result.append(Usage(account, label, 0, 0, 0.0, 0.0, 0.0, 0.0))
    return result


_PIVOT = ("select account, extract(epoch from bucket)::bigint, "
          "coalesce(sum(bytes) filter (where direction = 'in'), 0)::bigint, "
          "coalesce(sum(bytes) filter (where direction = 'out'), 0)::bigint")


def _collect(per_account: dict, rows) -> None:
    """Into {account: {epoch seconds: [bytes in, bytes out]}}, as bandwidth.statistics reads it."""
    for name, bucket, inbound, outbound in rows:
        sample = per_account.setdefault(name, {}).setdefault(bucket, [0, 0])
        sample[0] += inbound
        sample[1] += outbound


def to_csv(usage: list[Usage]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for row in usage:
        writer.writerow([row.account, row.month, row.bytes_in, row.bytes_out, f"{row.p95_in_bps:.0f}",
                         f"{row.p95_out_bps:.0f}", f"{row.p95_max_bps:.0f}", f"{row.peak_in_bps:.0f}",
                         f"{row.peak_out_bps:.0f}"])
    return out.getvalue()


def previous_month(today: date) -> date:
    return (today.replace(day=1) - timedelta(days=1)).replace(day=1)
