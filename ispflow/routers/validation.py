"""Checks on what a person types about a router: each error names its field for the form."""
from __future__ import annotations

import re

from . import grammar
from ..endpoints import EndpointError, format_endpoint, parse_endpoint
from .base import NETFLOW_VERSIONS, driver_for, vendors


class InvalidRouter(ValueError):
    """A router field is wrong; ``field`` names it so a form can show the message next to it."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def check_name(name: str) -> str:
    name = (name or "").strip()
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", name):
        raise InvalidRouter("name", "Use 1 to 63 letters, digits, dots, dashes or underscores.")
    return name


def check_host(host: str) -> str:
    host = (host or "").strip()
    try:
        return grammar.host(host)
    except ValueError:
        raise InvalidRouter("host", f"{host!r} is neither an IP address nor a host name (IPv6 zone ids are not allowed).") from None


def check_username(username: str) -> str:
    username = (username or "").strip()
    if not username:
        raise InvalidRouter("username", "Enter the username ispflow logs in with.")
    try:
        return grammar.username(username)
    except ValueError as exc:
        raise InvalidRouter("username", f"{str(exc)[0].upper()}{str(exc)[1:]}.") from None


def check_password(password: str) -> str:
    try:
        return grammar.password(password)
    except ValueError as exc:
        raise InvalidRouter("password", f"{str(exc)[0].upper()}{str(exc)[1:]}.") from None


def check_source_interface(text: str | None) -> str | None:
    text = (text or "").strip()
    if text and not grammar.INTERFACE.fullmatch(text):
        raise InvalidRouter("source_interface", "Not an interface name (letters, digits and . _ / : -, no spaces).")
    return text or None


def check_interfaces(vendor: str, text: str) -> str:
    parts = [p.strip() for p in (text or "").replace(";", ",").split(",") if p.strip()]
    if not parts or [p.lower() for p in parts] == ["all"]:
        if vendor in vendors() and not driver_for(vendor).watches_all_interfaces:
            raise InvalidRouter("interfaces", f"{driver_for(vendor).label} routers need the interfaces to watch "
                                              f"by name, for example {driver_for(vendor).interface_example}.")
        return "all"
    bad = [p for p in parts if not grammar.INTERFACE.fullmatch(p) or p.lower() == "all"]
    if bad:
        raise InvalidRouter("interfaces", f"{bad[0]!r} is not an interface name; list names separated by commas.")
    return ",".join(parts)


def check_collector(text: str | None) -> str | None:
    if not (text or "").strip():
        return None
    try:
        return format_endpoint(*parse_endpoint(text))
    except EndpointError as exc:
        raise InvalidRouter("collector", f"{exc}.") from None


def check_fields(vendor: str, netflow_version: str, port, timeout_s) -> None:
    if vendor not in vendors():
        raise InvalidRouter("vendor", f"Choose one of {', '.join(vendors())}.")
    if netflow_version not in NETFLOW_VERSIONS:
        raise InvalidRouter("netflow_version", "Choose 5, 9 or ipfix.")
    supported = driver_for(vendor).versions
    if netflow_version not in supported:
        raise InvalidRouter("netflow_version", f"{driver_for(vendor).label} exports version "
                                               f"{' or '.join(supported)} only.")
    if port is not None and not (isinstance(port, int) and 0 < port < 65536):
        raise InvalidRouter("port", "A port is a number from 1 to 65535.")
    if not (0 < float(timeout_s) <= 300):
        raise InvalidRouter("timeout_s", "A timeout is from 0.1 to 300 seconds.")


