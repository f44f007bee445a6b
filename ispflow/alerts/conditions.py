"""What each kind of rule watches: the incidents present now.

An incident is identified by a key that stays the same while the problem lasts (the account,
the exporter, the finding), so the cool-down can tell a continuing incident from a new one.
Rates are counted per minute from the flows' start times and stored volumes (which the collector
has already multiplied by the sampling rate); the last ``SETTLE`` of traffic is left out because
its flows have not all arrived yet.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa

from .rules import Rule

SETTLE = timedelta(minutes=2)
FINDINGS_RECENT = timedelta(hours=3)


@dataclass(frozen=True)
class Incident:
    key: str
    message: str
    details: dict = field(default_factory=dict)


def incidents(conn, rule: Rule, now: datetime) -> list[Incident]:
    return _CONDITIONS[rule.kind](conn, rule.params, now)


def _rate_window(params: dict, now: datetime) -> tuple[datetime, datetime]:
    end = (now - SETTLE).replace(second=0, microsecond=0)
    return end - timedelta(minutes=int(params["minutes"])), end


def _sustained_rate(conn, params: dict, now: datetime, group: str, where: str, extra: dict) -> list:
    """Groups whose rate was above the threshold in every minute of the window."""
    start, end = _rate_window(params, now)
    return conn.execute(sa.text(f"""
        with minutes as (
            select {group} as subject, time_bucket('1 minute', ts_start) as minute,
                   (sum(bytes) * 8 / 60.0)::float8 as bps
            from ispflow.flow_records
            where ts_start >= :start and ts_start < :end and {where}
            group by 1, 2
        )
        select subject, min(bps) as lowest, avg(bps) as average from minutes
        group by subject having count(*) = :minutes and min(bps) > :threshold
    """), {"start": start, "end": end, "minutes": int(params["minutes"]),
           "threshold": float(params["threshold_mbps"]) * 1e6, **extra}).all()


def subscriber_rate(conn, params: dict, now: datetime) -> list[Incident]:
    where, extra = "account is not null", {}
    if params.get("direction") in ("in", "out"):
        where += " and direction = :direction"
        extra["direction"] = params["direction"]
    if params.get("account"):
        where += " and account = :account"
        extra["account"] = params["account"]
    rows = _sustained_rate(conn, params, now, "account", where, extra)
    return [Incident(r.subject, f"Subscriber {r.subject} above {params['threshold_mbps']} Mbit/s for "
                                f"{params['minutes']} min (average {r.average / 1e6:.1f} Mbit/s).",
                     {"account": r.subject, "average_bps": round(float(r.average)),
                      "lowest_bps": round(float(r.lowest))}) for r in rows]


def interface_rate(conn, params: dict, now: datetime) -> list[Incident]:
    exporter_id = conn.execute(sa.text("select id from ispflow.exporters where address = cast(:a as inet)"),
                               {"a": params["exporter"]}).scalar()
    if exporter_id is None:
        return []
    column = "out_if" if params.get("direction") == "out" else "in_if"
    rows = _sustained_rate(conn, params, now, f"{column}", f"exporter_id = :exporter and {column} = :ifindex",
                           {"exporter": exporter_id, "ifindex": int(params["ifindex"])})
    key = f"{params['exporter']}/{params['ifindex']}/{params.get('direction') or 'in'}"
    return [Incident(key, f"Interface {params['ifindex']} of {params['exporter']} ({params.get('direction') or 'in'}) "
                          f"above {params['threshold_mbps']} Mbit/s for {params['minutes']} min "
                          f"(average {r.average / 1e6:.1f} Mbit/s).",
                     {"exporter": params["exporter"], "ifindex": params["ifindex"],
                      "average_bps": round(float(r.average))}) for r in rows]


def finding(conn, params: dict, now: datetime) -> list[Incident]:
    kind = params.get("finding_kind") or None
    rows = conn.execute(sa.text(f"""
        select kind, subject, peer, port, label, max(score) as score,
               (array_agg(summary order by score desc))[1] as summary, max(account) as account
        from ispflow.security_findings
        where window_start >= :since and score >= :min_score {"and kind = :kind" if kind else ""}
        group by kind, subject, peer, port, label
    """), {"since": now - FINDINGS_RECENT, "min_score": float(params.get("min_score") or 0), "kind": kind}).all()
    return [Incident(f"{r.kind}:{r.subject}:{r.peer or ''}:{r.port or ''}:{r.label}", r.summary,
                     {"kind": r.kind, "subject": str(r.subject), "peer": str(r.peer) if r.peer else None,
                      "port": r.port, "account": r.account, "score": round(float(r.score), 2)}) for r in rows]


def exporter_silent(conn, params: dict, now: datetime) -> list[Incident]:
    minutes = int(params.get("minutes") or 15)
    rows = conn.execute(sa.text("""
        select host(address) as address, name, last_flow_at from ispflow.exporters
        where last_flow_at is not null and last_flow_at < :since order by address
    """), {"since": now - timedelta(minutes=minutes)}).all()
    return [Incident(r.address, f"Exporter {r.name or r.address} has sent no flows since "
                                f"{r.last_flow_at.isoformat(timespec='seconds')} (over {minutes} min).",
                     {"exporter": r.address, "last_flow_at": r.last_flow_at.isoformat()}) for r in rows]


def router_clock(conn, params: dict, now: datetime) -> list[Incident]:
    skew = float(params.get("max_skew_s") or 2.0)
    found = []
    for r in conn.execute(sa.text("""
        select name, ntp_synced, ntp_detail, clock_skew_s from ispflow.routers
        where ntp_synced = false or abs(clock_skew_s) > :skew order by name
    """), {"skew": skew}):
        why = (f"clock {r.clock_skew_s:+.1f} s off" if r.clock_skew_s is not None and abs(r.clock_skew_s) > skew
               else f"NTP not synchronised ({r.ntp_detail or 'no detail'})")
        found.append(Incident(f"router:{r.name}", f"Router {r.name}: {why}.",
                              {"router": r.name, "clock_skew_s": r.clock_skew_s, "ntp_synced": r.ntp_synced}))
    for r in conn.execute(sa.text("""
        select host(address) as address, name, clock_skew_s from ispflow.exporters
        where abs(clock_skew_s) > :skew order by address
    """), {"skew": skew}):
        found.append(Incident(f"exporter:{r.address}", f"Exporter {r.name or r.address}: its clock is "
                                                       f"{r.clock_skew_s:+.1f} s off.",
                              {"exporter": r.address, "clock_skew_s": r.clock_skew_s}))
    return found


_CONDITIONS = {"subscriber_rate": subscriber_rate, "interface_rate": interface_rate, "finding": finding,
               "exporter_silent": exporter_silent, "router_clock": router_clock}
