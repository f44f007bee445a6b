"""What a compliance officer may ask for, validated in one place for the form, the CLI and jobs.

Every field arrives as text (a form field, a command-line option, a stored JSON value) and
leaves as a typed, normalised ``Criteria``; anything wrong is reported per field in a sentence
the form shows next to the field and the CLI prints as its one line.
"""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from typing import Mapping
from zoneinfo import ZoneInfo

from ..module_settings import months_before

SIDES = ("either", "src", "dst")
ORDERS = ("newest", "bytes")


class CriteriaError(ValueError):
    """One or more fields are wrong; ``errors`` maps field name to a sentence."""

    def __init__(self, errors: dict[str, str]):
        super().__init__(" ".join(errors.values()))
        self.errors = errors

    def first(self) -> str:
        return next(iter(self.errors.values()))


@dataclass(frozen=True)
class Criteria:
    """A validated search. Networks are ``ipaddress`` networks; times are aware UTC datetimes;
    the window is half-open ``[start, end)``; ports are inclusive ranges."""

    start: datetime
    end: datetime
    case_ref: str
    ip: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    ip_side: str = "either"
    peer: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    protocol: int | None = None
    ports: tuple[tuple[int, int], ...] = ()
    port_side: str = "either"
    account: str | None = None
    service: str | None = None

    def to_json(self) -> dict:
        """A JSON-able form for the audit log and the exports table; ``from_json`` reads it back."""
        data = asdict(self)
        data["ip"] = str(self.ip) if self.ip else None
        data["peer"] = str(self.peer) if self.peer else None
        data["start"] = self.start.isoformat()
        data["end"] = self.end.isoformat()
        data["ports"] = [list(p) for p in self.ports]
        return {k: v for k, v in data.items() if v not in (None, [], "")}

    @classmethod
    def from_json(cls, data: Mapping) -> "Criteria":
        values = dict(data)
        for key in ("ip", "peer"):
            if values.get(key):
                values[key] = ipaddress.ip_network(values[key])
        values["start"] = datetime.fromisoformat(values["start"])
        values["end"] = datetime.fromisoformat(values["end"])
        values["ports"] = tuple(tuple(p) for p in values.get("ports", ()))
        return cls(**values)


def parse_criteria(values: Mapping[str, str | None], *, zone: ZoneInfo, retention_months: int,
                   require_case: bool = True) -> Criteria:
    """Validate text fields into Criteria, or raise CriteriaError naming every bad field.

    Fields: ip, ip_side, peer, from, to, protocol, port, port_side, account, service, case_ref.
    Times without an offset are in ``zone`` (the ISP's time zone); a bare date as ``to``
    includes that whole day.
    """
    errors: dict[str, str] = {}
    text = {k: (v or "").strip() for k, v in values.items()}

    def check(name, parse, *args):
        try:
            return parse(*args)
        except ValueError as exc:
            errors[name] = str(exc)
            return None

    ip = check("ip", parse_network, text.get("ip", "")) if text.get("ip") else None
    peer = check("peer", parse_network, text.get("peer", "")) if text.get("peer") else None
    ip_side = check("ip_side", _choice, text.get("ip_side") or "either", SIDES, "Side")
    port_side = check("port_side", _choice, text.get("port_side") or "either", SIDES, "Side")
    account = text.get("account") or None
    service = text.get("service") or None
    if ip is None and "ip" not in errors and not account and not service:
        errors["ip"] = "Give an IP address or range, an account or a service."
    if peer is not None and ip is None and "ip" not in errors:
        errors["peer"] = "A peer address needs an IP address to pair with."
    if ip is not None and peer is not None and ip.version != peer.version:
        errors["peer"] = "The peer address must be of the same IP version as the address."

    start = check("from", parse_moment, text.get("from", ""), zone, "From", False)
    end = check("to", parse_moment, text.get("to", ""), zone, "To", True)
    if start and end:
        if start >= end:
            errors["to"] = "'To' must be later than 'From'."
        elif months_before(end, retention_months) > start:
            errors["to"] = (f"The range is longer than the retention period ({retention_months} months); "
                            "narrow it.")

    protocol = check("protocol", parse_protocol, text.get("protocol", "")) if text.get("protocol") else None
    ports = check("port", parse_ports, text.get("port", "")) if text.get("port") else ()
    case_ref = text.get("case_ref", "")
    if require_case and not case_ref:
        errors["case_ref"] = "A case reference or legal basis is required before any result is shown."
    elif len(case_ref) > 200:
        errors["case_ref"] = "The case reference is longer than 200 characters."

    if errors:
        raise CriteriaError(errors)
    return Criteria(start=start, end=end, case_ref=case_ref, ip=ip, ip_side=ip_side, peer=peer,
                    protocol=protocol, ports=ports or (), port_side=port_side, account=account, service=service)


def parse_network(value: str):
    """An address (as a single-host network) or a CIDR range, IPv4 or IPv6."""
    try:
        return ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise ValueError(f"'{value}' is not an IPv4 or IPv6 address or CIDR range.") from None


def parse_address(value: str):
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        raise ValueError(f"'{value}' is not an IPv4 or IPv6 address.") from None


def parse_moment(value: str, zone: ZoneInfo, label: str = "Time", end_of_day: bool = False) -> datetime:
    """An aware UTC datetime from ISO 8601 text; no offset means the ISP's time zone.

    A bare date is the start of that day, or with ``end_of_day`` the start of the next one,
    so that "to 2026-03-01" includes the whole of March 1st.
    """
    value = value.strip()
    if not value:
        raise ValueError(f"'{label}' is required.")
    try:
        day = date.fromisoformat(value)
    except ValueError:
        day = None
    if day is not None:
        if end_of_day:
            day += timedelta(days=1)
        return datetime.combine(day, time(), zone).astimezone(timezone.utc)
    normalised = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        moment = datetime.fromisoformat(normalised)
    except ValueError:
        raise ValueError(f"'{value}' is not a date-time such as 2026-03-01 14:30.") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(timezone.utc)


@lru_cache(maxsize=256)
def parse_protocol(value: str) -> int:
    """An IANA protocol number from a number or a name the system knows (tcp, udp, icmp, gre…)."""
    value = value.strip()
    if value.isdigit():
        number = int(value)
        if number > 255:
            raise ValueError(f"Protocol number {number} is out of range (0–255).")
        return number
    try:
        return socket.getprotobyname(value.lower())
    except OSError:
        raise ValueError(f"Unknown protocol name '{value}'; use a number or a name such as tcp, udp, icmp.") from None


def parse_ports(value: str) -> tuple[tuple[int, int], ...]:
    """'443', '1000-2000' or a comma list of both, as inclusive ranges."""
    ranges = []
    for part in value.replace(" ", "").split(","):
        if not part:
            continue
        low_text, sep, high_text = part.partition("-")
        if not low_text.isdigit() or (sep and not high_text.isdigit()):
            raise ValueError(f"'{part}' is not a port or a port range such as 1000-2000.")
        low = int(low_text)
        high = int(high_text) if sep else low
        if high > 65535:
            raise ValueError(f"Port {high} is out of range (0–65535).")
        if low > high:
            raise ValueError(f"The port range '{part}' runs backwards.")
        ranges.append((low, high))
    if not ranges:
        raise ValueError(f"'{value}' is not a port or a port range such as 1000-2000.")
    return tuple(ranges)


def _choice(value: str, allowed: tuple[str, ...], label: str) -> str:
    if value not in allowed:
        raise ValueError(f"{label} must be one of {', '.join(allowed)}.")
    return value
