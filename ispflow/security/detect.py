"""The five detectors: each reads one time window of ``ispflow.flow_records`` and returns findings.

Every query is bounded by ``ts_start`` (the hypertable's time dimension, so only the chunks of
the window are read) and groups inside PostgreSQL; only the few groups over a threshold come
back to Python. Lookups per address (the outbound baseline, the geography details) go
through the ``src_addr`` and ``dst_addr`` indexes.

Volumes are the stored counters, which the collector has already multiplied by the sampling
rate; counts of connections are not scaled (a sampled exporter shows fewer of them, which only
makes the detectors more cautious).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa

from ..geoip import GeoIP
from .settings import SecuritySettings

KINDS = ("scan", "bruteforce", "outbound", "beacon", "geography")
KIND_LABELS = {"scan": "Scan", "bruteforce": "Brute force", "outbound": "Unusual outbound volume",
               "beacon": "Beaconing", "geography": "Unexpected country"}

# A flow counts as a failed connection when the collector stored so, or, without a stored
# status, when it carried at most two packets (an unanswered SYN or probe).
_FAILED = "(status = 'failure' or (status is null and packets <= 2))"
_WINDOW = "ts_start >= :start and ts_start < :end"


@dataclass
class Finding:
    kind: str
    subject: str                 # the address the finding is about (the source, the subscriber)
    score: float                 # how far over its threshold; ranks findings
    summary: str                 # one sentence for people
    first_seen: datetime
    last_seen: datetime
    peer: str | None = None      # the other end, when there is one
    port: int | None = None
    account: str | None = None
    label: str = ""              # what groups findings of one subject (the country, the port)
    evidence: dict = field(default_factory=dict)


def detect_all(conn, start: datetime, end: datetime, settings: SecuritySettings, geo: GeoIP) -> list[Finding]:
    """All findings of the window ``[start, end)``."""
    return (scans(conn, start, end, settings) + brute_force(conn, start, end, settings)
            + unusual_outbound(conn, start, end, settings) + beacons(conn, start, end, settings)
            + unexpected_countries(conn, start, end, settings, geo))


def scans(conn, start, end, settings: SecuritySettings) -> list[Finding]:
    """Sources touching many addresses or many ports, mostly without an answer."""
    rows = conn.execute(sa.text(f"""
        select src_addr, max(account) as account, count(*) as flows,
               count(distinct dst_addr) as targets, count(distinct dst_port) as ports,
               count(*) filter (where {_FAILED}) as failed,
               min(ts_start) as first_seen, max(ts_start) as last_seen,
               case when count(distinct dst_addr) = 1 then min(dst_addr) end as only_target,
               (array_agg(distinct dst_port))[1:12] as port_sample
        from ispflow.flow_records
        where {_WINDOW} and protocol in (6, 17)
        group by src_addr
        having (count(distinct dst_addr) >= :targets or count(distinct dst_port) >= :ports)
           and count(*) filter (where {_FAILED}) * 100 >= :failed_percent * count(*)
    """), {"start": start, "end": end, "targets": settings.scan_min_targets, "ports": settings.scan_min_ports,
           "failed_percent": settings.scan_failed_percent}).all()
    found = []
    for r in rows:
        wide = r.targets >= settings.scan_min_targets
        what = f"{r.targets} addresses" if wide else f"{r.ports} ports on {r.targets} address(es)"
        found.append(Finding(
            "scan", str(r.src_addr), max(r.targets / settings.scan_min_targets, r.ports / settings.scan_min_ports),
            f"{r.src_addr} probed {what}; {_percent(r.failed, r.flows)} of {r.flows} connections failed.",
            r.first_seen, r.last_seen, peer=str(r.only_target) if r.only_target else None, account=r.account,
            label="addresses" if wide else "ports",
            evidence={"flows": r.flows, "failed": r.failed, "targets": r.targets, "ports": r.ports,
                      "port_sample": list(r.port_sample or [])}))
    return found


def brute_force(conn, start, end, settings: SecuritySettings) -> list[Finding]:
    """Sources with many failed or short TCP connections to one login port, repeated on the
    addresses they try (one attempt on each of many addresses is a scan, reported as such)."""
    if not settings.brute_ports:
        return []
    rows = conn.execute(sa.text(f"""
        select src_addr, dst_port, max(account) as account, count(*) as attempts,
               count(distinct dst_addr) as targets,
               count(*) filter (where status = 'failure' or bytes <= :max_bytes) as failed_or_short,
               min(ts_start) as first_seen, max(ts_start) as last_seen,
               case when count(distinct dst_addr) = 1 then min(dst_addr) end as only_target
        from ispflow.flow_records
        where {_WINDOW} and protocol = 6 and dst_port = any(:ports)
        group by src_addr, dst_port
        having count(*) >= :attempts and count(*) >= 2 * count(distinct dst_addr)
           and count(*) filter (where status = 'failure' or bytes <= :max_bytes) * 100 >= :failed_percent * count(*)
    """), {"start": start, "end": end, "ports": list(settings.brute_ports), "attempts": settings.brute_min_attempts,
           "max_bytes": settings.brute_max_bytes, "failed_percent": settings.brute_failed_percent}).all()
    return [Finding(
        "bruteforce", str(r.src_addr), r.attempts / settings.brute_min_attempts,
        f"{r.src_addr} made {r.attempts} failed or short connections to port {r.dst_port} "
        f"of {r.targets} address(es).",
        r.first_seen, r.last_seen, peer=str(r.only_target) if r.only_target else None, port=r.dst_port,
        account=r.account, label=str(r.dst_port),
        evidence={"attempts": r.attempts, "failed_or_short": r.failed_or_short, "targets": r.targets,
                  "port": r.dst_port}) for r in rows]


def unusual_outbound(conn, start, end, settings: SecuritySettings) -> list[Finding]:
    """Subscribers sending far more than their own hourly average of the days before.

    The baseline is read per address of the subscribers over the threshold only, through the
    source-address index, so a busy ISP pays for a handful of subscribers, not for all.
    """
    minimum = settings.outbound_min_megabytes * 1_000_000 * (end - start) / timedelta(hours=1)
    rows = conn.execute(sa.text(f"""
        select account, src_addr, sum(bytes) as bytes, count(*) as flows,
               min(ts_start) as first_seen, max(ts_start) as last_seen
        from ispflow.flow_records
        where {_WINDOW} and direction = 'out' and account in (
            select account from ispflow.flow_records
            where {_WINDOW} and direction = 'out' and account is not null
            group by account having sum(bytes) >= :minimum)
        group by account, src_addr
    """), {"start": start, "end": end, "minimum": minimum}).all()
    by_account = defaultdict(list)
    for r in rows:
        by_account[r.account].append(r)
    found = []
    days = settings.outbound_baseline_days
    for account, parts in by_account.items():
        sent = sum(int(p.bytes) for p in parts)
        addresses = [str(p.src_addr) for p in parts]
        before = conn.execute(sa.text("""
            select coalesce(sum(bytes), 0) from ispflow.flow_records
            where src_addr = any(cast(:addresses as inet[])) and ts_start >= :since and ts_start < :start
              and direction = 'out'
        """), {"addresses": addresses, "since": start - timedelta(days=days), "start": start}).scalar()
        hours = (end - start) / timedelta(hours=1)
        usual = int(before) / (days * 24) * hours
        if sent < settings.outbound_factor * usual:
            continue
        top = max(parts, key=lambda p: p.bytes)
        ratio = sent / usual if usual else None
        found.append(Finding(
            "outbound", str(top.src_addr), (ratio or settings.outbound_factor * 10) / settings.outbound_factor,
            f"{account} sent {_megabytes(sent)} in the window, "
            + (f"{ratio:.0f}× its usual {_megabytes(usual)}." if ratio else f"with nothing sent in the {days} days before."),
            min(p.first_seen for p in parts), max(p.last_seen for p in parts), account=account,
            evidence={"bytes": sent, "usual_bytes": int(usual), "baseline_days": days, "addresses": addresses,
                      "flows": sum(p.flows for p in parts)}))
    return found


def beacons(conn, start, end, settings: SecuritySettings) -> list[Finding]:
    """Subscriber addresses opening new connections to one remote address at regular intervals.

    Looks back ``beacon_window_hours`` from the window's end and reports pairs still active in
    the window. Records of one long connection (split by the exporter's active timeout) are
    regular too; requiring mostly different source ports keeps them out.

    Busy networks have many pairs with enough events (a subscriber and its DNS resolver), so
    the candidates' flows are joined by hash and their intervals computed on a narrow sort of
    (pair number, time); the planner, expecting few candidates, would otherwise look each pair
    up through the address indexes (minutes for one hour at 50M flows a day). The few regular
    pairs are then described through those indexes.
    """
    since = min(start, end - timedelta(hours=settings.beacon_window_hours))
    params = {"since": since, "start": start, "end": end, "events": settings.beacon_min_events,
              "min_period": settings.beacon_min_period_s, "cv_percent": settings.beacon_max_cv_percent}
    conn.execute(sa.text("set local enable_nestloop = off"))
    conn.execute(sa.text("set local work_mem = '256MB'"))
    regular = conn.execute(sa.text("""
        with pairs as materialized (
            select row_number() over () as pair, src_addr, dst_addr from (
                select src_addr, dst_addr from ispflow.flow_records
                where ts_start >= :since and ts_start < :end and direction = 'out'
                group by src_addr, dst_addr
                having count(*) >= :events and max(ts_start) >= :start) candidates
        ), gaps as (
            select p.pair, date_part('epoch', f.ts_start - lag(f.ts_start) over (
                       partition by p.pair order by f.ts_start)) as gap
            from ispflow.flow_records f join pairs p on p.src_addr = f.src_addr and p.dst_addr = f.dst_addr
            where f.ts_start >= :since and f.ts_start < :end and f.direction = 'out'
        )
        select p.src_addr, p.dst_addr, g.period, g.spread from (
            select pair, avg(gap) as period, stddev_pop(gap) as spread from gaps group by pair
            having avg(gap) >= :min_period and stddev_pop(gap) * 100 <= :cv_percent * avg(gap)
        ) g join pairs p using (pair)
        """), params).all()
    conn.execute(sa.text("reset enable_nestloop"))
    conn.execute(sa.text("reset work_mem"))
    rows = []
    for pair in regular:
        described = conn.execute(sa.text("""
            select src_addr, dst_addr, max(account) as account, count(*) as events,
                   count(distinct src_port) as source_ports, min(dst_port) as dst_port,
                   count(distinct dst_port) as dst_ports, min(ts_start) as first_seen, max(ts_start) as last_seen
            from ispflow.flow_records
            where src_addr = :src and dst_addr = :dst and ts_start >= :since and ts_start < :end
              and direction = 'out'
            group by src_addr, dst_addr having count(distinct src_port) * 2 >= count(*)
        """), {**params, "src": pair.src_addr, "dst": pair.dst_addr}).first()
        if described is not None:
            rows.append((described, pair.period, pair.spread))
    found = []
    for r, period, spread in rows:
        period, spread = float(period), float(spread or 0)
        cv = spread / period if period else 0.0
        port = r.dst_port if r.dst_ports == 1 else None
        found.append(Finding(
            "beacon", str(r.src_addr), r.events / settings.beacon_min_events * (1 + 1 / max(cv * 10, 0.1)),
            f"{r.src_addr} connected to {r.dst_addr} {r.events} times, every {_duration(period)} "
            f"(±{cv * 100:.1f} %).",
            r.first_seen, r.last_seen, peer=str(r.dst_addr), port=port, account=r.account,
            evidence={"events": r.events, "period_s": round(period, 3), "cv": round(cv, 4),
                      "source_ports": r.source_ports, "since": since.isoformat()}))
    return found


def unexpected_countries(conn, start, end, settings: SecuritySettings, geo: GeoIP) -> list[Finding]:
    """Subscriber addresses exchanging traffic with countries the ISP marked as unexpected.

    Remote addresses are looked up in the GeoIP database (nothing to do without one); refused
    connections from outside are left out, or every subscriber would be reported whenever a
    scanner of that country passes by.
    """
    wanted = set(settings.unexpected_countries)
    if not wanted or not geo.configured:
        return []
    remotes = conn.execute(sa.text(f"""
        select dst_addr from ispflow.flow_records where {_WINDOW} and direction = 'out' group by dst_addr
        union
        select src_addr from ispflow.flow_records
        where {_WINDOW} and direction = 'in' and status is distinct from 'failure' group by src_addr
    """), {"start": start, "end": end}).scalars().all()
    countries = {address: country for address, country in geo.countries(remotes).items() if country in wanted}
    if not countries:
        return []
    rows = conn.execute(sa.text(f"""
        select case when direction = 'out' then src_addr else dst_addr end as local,
               case when direction = 'out' then dst_addr else src_addr end as remote,
               max(account) as account, count(*) as flows, sum(bytes) as bytes,
               min(ts_start) as first_seen, max(ts_start) as last_seen
        from ispflow.flow_records
        where {_WINDOW} and ((direction = 'out' and dst_addr = any(cast(:remotes as inet[])))
              or (direction = 'in' and src_addr = any(cast(:remotes as inet[]))
                  and status is distinct from 'failure'))
        group by 1, 2
    """), {"start": start, "end": end, "remotes": list(countries)}).all()
    groups = defaultdict(list)
    for r in rows:
        groups[(str(r.local), countries[str(r.remote)])].append(r)
    found = []
    for (local, country), parts in groups.items():
        flows = sum(p.flows for p in parts)
        if flows < settings.geography_min_flows:
            continue
        parts.sort(key=lambda p: p.bytes, reverse=True)
        name = geo.lookup(parts[0].remote).country_name or country
        sent = sum(int(p.bytes) for p in parts)
        found.append(Finding(
            "geography", local, flows / settings.geography_min_flows,
            f"{local} exchanged {flows} flows ({_megabytes(sent)}) with {len(parts)} address(es) in {name}.",
            min(p.first_seen for p in parts), max(p.last_seen for p in parts),
            peer=str(parts[0].remote) if len(parts) == 1 else None, account=parts[0].account, label=country,
            evidence={"country": country, "flows": flows, "bytes": sent,
                      "remotes": [str(p.remote) for p in parts[:10]]}))
    return found


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f} %" if whole else "0 %"


def _megabytes(count: float) -> str:
    return f"{count / 1_000_000:,.1f} MB"


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
