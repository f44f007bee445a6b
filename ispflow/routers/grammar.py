"""The strict grammar of every value ispflow puts on a router's command line or into an API call.

A Cisco configuration session is a line-based text protocol: a value carrying a newline, or
anything the CLI reads as a separator, becomes a command of its own, run with ispflow's
privileged login. RouterOS API words are length-prefixed, but a stray value still lands in the
router's configuration. So every value a driver sends is checked here against the narrowest
grammar that fits it, whoever typed it (a technician's form, the CLI, an admin's module
setting, the environment) and whichever driver sends it: ``RouterSpec`` checks itself with
these functions when it is built. Each function returns the value normalised or raises
ValueError with a sentence that does not repeat the (possibly hostile) value.
"""
from __future__ import annotations

import ipaddress
import re

# Interface names as Cisco IOS/XE/NX-OS and RouterOS print them: GigabitEthernet0/0/1.100,
# Serial0/0:1, ether1, sfp-sfpplus1, bridge_lan. No spaces: a name with one is refused.
INTERFACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:-]{0,63}")
USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}")
HOSTNAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")
# Passwords travel inside the login exchange (SSH auth, the API's =password= word), never on a
# command line; still, no control character has a place in one.
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_PASSWORD = 128


def ip_address(text: str) -> str:
    """An IPv4 or IPv6 address without a zone id, in its canonical form."""
    if not isinstance(text, str) or text != text.strip() or not text:
        raise ValueError("an IP address has no spaces around it")
    if "%" in text:
        raise ValueError("an IPv6 zone id (%...) is not allowed in an address a router is given")
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise ValueError("not an IP address") from None


def host(text: str) -> str:
    """A management address: an IP address (no zone id) or a DNS host name."""
    try:
        return ip_address(text)
    except ValueError:
        if isinstance(text, str) and "%" not in text and HOSTNAME.fullmatch(text):
            return text
    raise ValueError("neither an IP address nor a host name")


def port(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise ValueError("a port is a number from 1 to 65535")
    return value


def interface(text: str) -> str:
    if not isinstance(text, str) or not INTERFACE.fullmatch(text):
        raise ValueError("an interface name is letters, digits and . _ / : - (no spaces), up to 64 characters")
    return text


def username(text: str) -> str:
    if not isinstance(text, str) or not USERNAME.fullmatch(text):
        raise ValueError("a username is letters, digits and . _ @ + - (no spaces), up to 64 characters")
    return text


def password(text: str) -> str:
    if not isinstance(text, str) or CONTROL.search(text) or len(text) > MAX_PASSWORD:
        raise ValueError(f"a password has no control characters (newline, tab, ...) and at most {MAX_PASSWORD} characters")
    return text
