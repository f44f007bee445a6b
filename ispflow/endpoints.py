"""HOST:PORT, read one way for the module settings, router provisioning and the collector.

The rule: an IP address, never a name, then a port. ``192.0.2.10:2055`` or ``[2001:db8::10]:2055``
(an IPv6 address always in brackets, so its colons are never taken for the port's). Names are
refused everywhere: RouterOS exports only to an address, a name resolved by the collector or a
router at some later moment can change under an evidence chain, and one rule for all three
places means the settings page cannot accept what provisioning then refuses.

Strict on purpose, because the host part ends up in router commands: no zone ids (``%eth0``),
no whitespace or control characters inside, ASCII digits only. Surrounding spaces are trimmed.
The canonical text of the address is returned (``2001:DB8::0010`` → ``2001:db8::10``).
"""
from __future__ import annotations

import ipaddress
import re

_SHAPE = re.compile(r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<v4>[0-9.]+))?:(?P<port>[0-9]{1,5})", re.ASCII)
EXAMPLE = "192.0.2.10:2055 or [2001:db8::10]:2055"


class EndpointError(ValueError):
    """Not ADDRESS:PORT by the rule above; the message names the value and the rule."""


def _refuse(text: str, why: str) -> EndpointError:
    return EndpointError(f"{text!r} is not ADDRESS:PORT ({why}); write it as {EXAMPLE}")


def parse_endpoint(text: str, *, default_port: int | None = None, listen: bool = False) -> tuple[str, int]:
    """``(address, port)`` from ``ADDRESS:PORT``; raises EndpointError with one sentence.

    ``default_port``: the port when the text is a bare address. ``listen``: the collector's
    own sockets, where ``:PORT`` means every IPv4 address and port 0 asks for any free port.
    """
    original = text
    text = (text or "").strip()
    if default_port is not None and _SHAPE.fullmatch(text) is None:
        text = (f"[{text}]" if ":" in text and not text.startswith("[") else text) + f":{default_port}"
    match = _SHAPE.fullmatch(text)
    if match is None:
        if any(c.isspace() or not c.isprintable() for c in text):
            raise _refuse(original, "spaces or control characters inside")
        if "%" in text:
            raise _refuse(original, "an IPv6 zone id is not accepted")
        if text.count(":") > 1 and not text.startswith("["):
            raise _refuse(original, "an IPv6 address goes in brackets")
        if not text.startswith("[") and re.search(r"[A-Za-z]", text.rpartition(":")[0] or text):
            raise _refuse(original, "an IP address, not a host name")
        raise _refuse(original, "an address, a colon and a port number")
    host = match["v6"] or match["v4"]
    if host is None:
        if not listen:
            raise _refuse(original, "the address is missing")
        host = "0.0.0.0"
    try:
        address = ipaddress.IPv6Address(host) if match["v6"] else ipaddress.IPv4Address(host)
    except ValueError:
        raise _refuse(original, f"{host} is not an IPv{'6' if match['v6'] else '4'} address") from None
    port = int(match["port"])
    if not (0 if listen else 1) <= port <= 65535:
        raise _refuse(original, f"port {port} is outside {0 if listen else 1}–65535")
    return str(address), port


def format_endpoint(host: str, port: int) -> str:
    """The text ``parse_endpoint`` reads back as ``(host, port)``."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
