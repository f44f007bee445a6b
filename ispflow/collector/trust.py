"""Which exporters' flows are evidence: trusted exporters and provisioned routers.

The collector stores flows and NAT events only from these addresses; anyone else's packets
are counted and dropped, so a host that can reach UDP 2055 cannot plant a flow or a NAT event.
Trust is given and taken by an admin (``ispflow exporters trust|untrust``, the status page),
each change in the audit log; a provisioned router (``routers.provisioned_at``) is trusted by
its address without that. Trust changes notify running collectors (see the
``collector_exporter_trust`` migration), which reload at once.
"""
from __future__ import annotations

import ipaddress
import socket

import sqlalchemy as sa

from .. import audit


def canonical(address: str) -> str:
    """The address as the collector sees senders (IPv4-mapped IPv6 as IPv4, no IPv6 scope, which
    PostgreSQL's inet cannot hold); ValueError if none."""
    parsed = ipaddress.ip_address(str(address).strip().split("%", 1)[0])
    if parsed.version == 6 and parsed.ipv4_mapped is not None:
        parsed = parsed.ipv4_mapped
    return str(parsed)


def router_addresses(host: str, resolve: bool) -> set[str]:
    """A router's host as addresses: itself when it is one, else (``resolve``) what DNS says."""
    try:
        return {canonical(host)}
    except ValueError:
        pass
    if not resolve:
        return set()
    try:
        return {canonical(info[4][0]) for info in socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)}
    except (OSError, ValueError):
        return set()


def trusted_addresses(conn, resolve: bool = True) -> frozenset[str]:
    """Addresses whose flows are stored: trusted exporters and provisioned routers."""
    exporters = conn.execute(sa.text("select host(address) from ispflow.exporters where trusted")).scalars().all()
    hosts = conn.execute(sa.text("select host from ispflow.routers where provisioned_at is not null")).scalars().all()
    found = {canonical(a) for a in exporters}
    for host in hosts:
        found |= router_addresses(host, resolve)
    return frozenset(found)


def trust(conn, address: str, *, actor: str, role: str | None = None, reason: str | None = None) -> bool:
    """Trust ``address`` (registering it if never seen) and audit it; False if it already was.

    The caller commits."""
    address = canonical(address)
    changed = conn.execute(sa.text(
        "insert into ispflow.exporters (address, trusted, trusted_by, trusted_at) values (:a, true, :by, now()) "
        "on conflict (address) do update set trusted = true, trusted_by = excluded.trusted_by, "
        "trusted_at = excluded.trusted_at where not ispflow.exporters.trusted returning id"),
        {"a": address, "by": actor}).first() is not None
    if changed:
        audit.record(conn, actor=actor, role=role, action="exporter.trust",
                     criteria={"address": address, **({"reason": reason} if reason else {})})
    return changed


def untrust(conn, address: str, *, actor: str, role: str | None = None) -> bool:
    """Stop storing ``address``'s flows and audit it; False if it was not trusted. The caller commits.

    A provisioned router stays trusted by its address whatever this says (``provisioned_router``)."""
    address = canonical(address)
    changed = conn.execute(sa.text(
        "update ispflow.exporters set trusted = false, trusted_by = :by, trusted_at = now() "
        "where address = cast(:a as inet) and trusted returning id"), {"a": address, "by": actor}).first() is not None
    if changed:
        audit.record(conn, actor=actor, role=role, action="exporter.untrust", criteria={"address": address})
    return changed


def provisioned_router(conn, address: str) -> str | None:
    """The name of the provisioned router at ``address``, if one is (without resolving names)."""
    address = canonical(address)
    for name, host in conn.execute(sa.text(
            "select name, host from ispflow.routers where provisioned_at is not null order by name")).all():
        if address in router_addresses(host, resolve=False):
            return name
    return None


def exporters(conn) -> list:
    """Every exporter seen or trusted, with its trust, counters and drops, for the list and the status page."""
    rows = conn.execute(sa.text(
        "select host(address) as address, name, trusted, trusted_by, trusted_at, netflow_version, last_seen, "
        "packets, flows, decode_errors, dropped from ispflow.exporters order by address")).mappings().all()
    routers = {}
    for name, host in conn.execute(sa.text(
            "select name, host from ispflow.routers where provisioned_at is not null")).all():
        for address in router_addresses(host, resolve=False):
            routers[address] = name
    return [{**row, "router": routers.get(row["address"]),
             "storing": bool(row["trusted"] or row["address"] in routers)} for row in rows]
