"""Who held this address (and, behind CGNAT, this public port) at this moment?

Behind carrier-grade NAT a public address is shared, so the answer comes from the NAT events
the collector stored: the translation or port block that covered the public address and
port at that moment gives the private address, and the subscriber directory (or the account
the collector stamped on the event) gives the account and service. Without a NAT match the
directory answers directly.

NAT events arrive either as one record with a start and an end, or as a "create" record and
a later "delete" record (IPFIX natEvent codes, RFC 8158); both shapes are understood.

Several translations of the address open at the moment (no port given, or overlapping
records) give every candidate and the reason, never the latest one alone.

Without a NAT event, the flow records themselves may carry the translation (MikroTik, Cisco ASA
NSEL: ``post_nat_*`` columns). A flow active at the moment (±1 s, since reports give whole
seconds) answers when its post-NAT source is the address (an outgoing flow: the private
address is its source) or when its destination is the address and it has a post-NAT
destination (a reply: the private address is that). The public port and the remote side, when
given, must match; a record that does not report the public port (RouterOS 6.39 sends none on
outgoing flows) cannot be excluded by a port, and says so. When the matching records name more
than one private address, every candidate is listed with the reason, never one picked.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

# natEvent codes that open a mapping, and the ones that close it.
OPENING = (1, 4, 6, 8, 10, 14, 16)
CLOSING = (2, 5, 7, 9, 11, 15, 17)


@dataclass(frozen=True)
class Holder:
    address: str
    at: datetime
    account: str | None
    service: str | None
    prefix: str | None = None           # the directory entry that matched
    private_addr: str | None = None     # behind CGNAT
    private_port: int | None = None
    public_port: int | None = None
    port_block: tuple[int, int] | None = None
    nat_since: datetime | None = None
    nat_until: datetime | None = None
    source: str = "directory"           # "nat_event", "flow" (post-NAT fields) or "directory"
    remote: str | None = None           # the other side of the flow that answered
    candidates: tuple["Holder", ...] = ()  # when the records cannot single one out
    reason: str | None = None           # why there are several candidates

    @property
    def ambiguous(self) -> bool:
        return len(self.candidates) > 1

    @property
    def behind_nat(self) -> bool:
        return self.private_addr is not None


_NAT_SQL = """
select n.ts, n.ts_end, host(n.private_addr) as private_addr, n.private_port, n.public_port,
       n.port_block_start, n.port_block_end, n.account, n.service,
       (select min(d.ts) from ispflow.nat_events d
         where d.public_addr = n.public_addr and d.event in %(closing)s
           and d.ts >= n.ts and d.ts <= %(at)s
           and d.private_addr is not distinct from n.private_addr
           and coalesce(d.public_port, d.port_block_start) is not distinct from
               coalesce(n.public_port, n.port_block_start)) as closed_at
from ispflow.nat_events n
where n.public_addr = cast(%(ip)s as inet)
  and n.ts <= %(at)s and n.ts >= %(since)s
  and n.event in %(opening)s
  and (n.ts_end is null or n.ts_end >= %(at)s)
  and (%(port)s::integer is null
       or n.public_port = %(port)s::integer
       or %(port)s::integer between n.port_block_start and n.port_block_end)
  and (%(remote)s::inet is null or n.dst_addr is null or n.dst_addr = %(remote)s::inet)
order by n.ts desc
limit 20
"""

def who_held(conn, address: str, at: datetime, port: int | None = None, *,
             nat_since: datetime | None = None, remote: str | None = None) -> Holder | None:
    """The subscriber behind ``address`` (and public ``port``, talking to ``remote``) at ``at``.

    None when nobody held it; a Holder with ``candidates`` and a ``reason`` when flow records
    leave several. ``conn`` is a SQLAlchemy Connection. ``nat_since`` bounds how far back a
    still-open translation is looked for (the NAT retention period).
    """
    address = str(ipaddress.ip_address(address))
    remote = str(ipaddress.ip_address(remote)) if remote else None
    since = nat_since or datetime(1970, 1, 1, tzinfo=at.tzinfo)
    nat = conn.exec_driver_sql(
        _NAT_SQL, {"ip": address, "at": at, "since": since, "port": port, "remote": remote, "opening": OPENING,
                   "closing": CLOSING}
    ).all()
    open_events: dict = {}
    for event in nat:
        if event.closed_at is None:
            open_events.setdefault(event.private_addr, event)  # the latest per private address
    if open_events:
        candidates = tuple(_nat_candidate(conn, address, at, event) for event in open_events.values())
        if len(candidates) == 1:
            return candidates[0]
        return Holder(address, at, None, None, source="nat_event", candidates=candidates, reason=(
            f"{len(candidates)} private addresses held translations of {address} at that moment, by the NAT "
            "events" + ("" if port is not None else "; give the public port to narrow it")))
    translated = _from_flow_records(conn, address, at, port, remote)
    if translated is not None:
        return translated
    directory = _directory(conn, address, at)
    if directory is None:
        return None
    return Holder(address, at, directory.account, directory.service, directory.prefix)


def _nat_candidate(conn, address: str, at: datetime, event) -> Holder:
    account, service, prefix = event.account, event.service, None
    if event.private_addr and not account:
        directory = _directory(conn, event.private_addr, at)
        if directory:
            account, service, prefix = directory.account, directory.service, directory.prefix
    block = (event.port_block_start, event.port_block_end) if event.port_block_start is not None else None
    return Holder(address, at, account, service, prefix, event.private_addr, event.private_port,
                  event.public_port, block, event.ts, event.ts_end, source="nat_event")


def _directory(conn, address: str, at: datetime):
    from ..subscribers import who

    return who(conn, address, at)


# Flows active at the moment whose translation involves the address: outgoing (post-NAT source)
# and replies (destination, with a post-NAT destination). Both use an (address, ts_start) index.
_FLOW_SQL = """
select * from (
  (select f.ts_start, f.ts_end, host(f.src_addr) as private_addr, f.src_port as private_port,
          f.post_nat_src_port as public_port, host(f.dst_addr) as remote, f.account, f.service
     from ispflow.flow_records f
    where f.post_nat_src_addr = cast(%(ip)s as inet)
      and f.ts_start >= %(since)s and f.ts_start <= %(late)s and f.ts_end >= %(early)s
      and (%(remote)s::inet is null or f.dst_addr = %(remote)s::inet)
    order by f.ts_start desc limit %(limit)s)
  union all
  (select f.ts_start, f.ts_end, host(f.post_nat_dst_addr), f.post_nat_dst_port, f.dst_port,
          host(f.src_addr), null, null
     from ispflow.flows f
    where f.dst_addr = cast(%(ip)s as inet) and f.post_nat_dst_addr is not null
      and f.ts_start >= %(since)s and f.ts_start <= %(late)s and f.ts_end >= %(early)s
      and (%(remote)s::inet is null or f.src_addr = %(remote)s::inet)
    order by f.ts_start desc limit %(limit)s)
) r order by ts_start desc
"""
_SLACK = timedelta(seconds=1)
_LONGEST_FLOW = timedelta(days=1)   # bounds the index scan; exporters end flows far sooner
_LIMIT = 200


def _from_flow_records(conn, address: str, at: datetime, port: int | None, remote: str | None) -> Holder | None:
    rows = conn.exec_driver_sql(_FLOW_SQL, {
        "ip": address, "remote": remote, "early": at - _SLACK, "late": at + _SLACK,
        "since": at - _LONGEST_FLOW, "limit": _LIMIT}).all()
    if not rows:
        return None
    note = None
    if port is not None:
        exact = [r for r in rows if r.public_port == port]
        if exact:
            rows = exact
        else:
            rows = [r for r in rows if r.public_port is None]
            if not rows:
                return None
            note = (f"no record reports public port {port}; the {len(rows)} matching record(s) carry no "
                    "post-NAT port, so the port cannot tell them apart")
    by_private: dict[str, list] = {}
    for row in rows:
        by_private.setdefault(row.private_addr, []).append(row)
    candidates = tuple(_candidate(conn, address, at, records, remote) for records in by_private.values())
    if len(candidates) == 1:
        return candidates[0] if note is None else replace(candidates[0], reason=note)
    asked = "address" + (" and port" if port is not None else "") + (" and remote side" if remote else "")
    reason = (f"{len(candidates)} private addresses used {address} at that moment, by the flow records "
              f"matching the {asked}")
    if note:
        reason += f"; {note}"
    elif port is None or remote is None:
        reason += "; give the " + " or the ".join(
            [w for w, given in (("public port", port is not None), ("remote address", remote)) if not given]) \
            + " to narrow it"
    return Holder(address, at, None, None, source="flow", candidates=candidates, reason=reason)


def _candidate(conn, address: str, at: datetime, records: list, remote: str | None) -> Holder:
    first = records[0]
    account, service, prefix = first.account, first.service, None
    if not account:
        directory = _directory(conn, first.private_addr, at)
        if directory:
            account, service, prefix = directory.account, directory.service, directory.prefix
    ports = {r.public_port for r in records if r.public_port is not None}
    private_ports = {r.private_port for r in records}
    remotes = {r.remote for r in records}
    return Holder(address, at, account, service, prefix, first.private_addr,
                  first.private_port if len(private_ports) == 1 else None,
                  ports.pop() if len(ports) == 1 else None, None,
                  min(r.ts_start for r in records), max(r.ts_end for r in records), source="flow",
                  remote=remote or (remotes.pop() if len(remotes) == 1 else None))
