"""Who held this address (and, behind CGNAT, this public port) at this moment?

Behind carrier-grade NAT a public address is shared, so the answer comes from the NAT events
the collector stored: the translation or port block that covered the public address and
port at that moment gives the private address, and the subscriber directory (or the account
the collector stamped on the event) gives the account and service. Without a NAT match the
directory answers directly.

NAT events arrive either as one record with a start and an end, or as a "create" record and
a later "delete" record (IPFIX natEvent codes, RFC 8158); both shapes are understood.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime

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
order by n.ts desc
limit 20
"""

def who_held(conn, address: str, at: datetime, port: int | None = None, *,
             nat_since: datetime | None = None) -> Holder | None:
    """The subscriber behind ``address`` (and public ``port``) at ``at``, or None.

    ``conn`` is a SQLAlchemy Connection. ``nat_since`` bounds how far back a still-open
    translation is looked for (the NAT retention period).
    """
    address = str(ipaddress.ip_address(address))
    since = nat_since or datetime(1970, 1, 1, tzinfo=at.tzinfo)
    nat = conn.exec_driver_sql(
        _NAT_SQL, {"ip": address, "at": at, "since": since, "port": port, "opening": OPENING, "closing": CLOSING}
    ).all()
    for event in nat:
        if event.closed_at is not None:
            continue
        account, service, prefix = event.account, event.service, None
        if event.private_addr and not account:
            directory = _directory(conn, event.private_addr, at)
            if directory:
                account, service, prefix = directory.account, directory.service, directory.prefix
        block = (event.port_block_start, event.port_block_end) if event.port_block_start is not None else None
        return Holder(address, at, account, service, prefix, event.private_addr, event.private_port,
                      event.public_port, block, event.ts, event.ts_end)
    directory = _directory(conn, address, at)
    if directory is None:
        return None
    return Holder(address, at, directory.account, directory.service, directory.prefix)


def _directory(conn, address: str, at: datetime):
    from ..subscribers import who

    return who(conn, address, at)
