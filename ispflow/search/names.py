"""Human names for numbers: ports and protocols from the system's databases, hosts from DNS.

Port and protocol names come from the operating system at run time rather than from a
copied table: ports through ``socket.getservbyport`` (``/etc/services``), protocols by reading
``/etc/protocols`` (the socket module only maps protocol names to numbers). Reverse DNS runs
in threads with a short deadline so a slow resolver cannot hold up a page; answers (and
failures) are cached for a while.
"""
from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from functools import lru_cache

_TRANSPORTS = {6: "tcp", 17: "udp", 132: "sctp"}


PROTOCOLS_FILE = "/etc/protocols"


@lru_cache(maxsize=1)
def protocol_names() -> tuple[str, ...]:
    """A name (or the number as text) for every protocol number 0–255, indexable by number.

    Python's socket module maps names to numbers only, so the system's protocol database is
    read at run time for the other direction.
    """
    names = [str(n) for n in range(256)]
    try:
        with open(PROTOCOLS_FILE, encoding="utf-8", errors="replace") as lines:
            for line in lines:
                words = line.split("#", 1)[0].split()
                if len(words) >= 2 and words[1].isdigit() and int(words[1]) < 256:
                    number = int(words[1])
                    if names[number] == str(number):
                        names[number] = words[0].lower()
    except OSError:
        pass
    return tuple(names)


def protocol_name(number: int) -> str:
    """'tcp' for 6; the number as text when the system does not know it."""
    return protocol_names()[number] if 0 <= number < 256 else str(number)


@lru_cache(maxsize=4096)
def port_name(port: int, protocol: int) -> str | None:
    """'https' for 443/tcp; None when the system has no name or the protocol has no ports."""
    transport = _TRANSPORTS.get(protocol)
    if transport is None or not 0 < port < 65536:
        return None
    try:
        return socket.getservbyport(port, transport)
    except OSError:
        return None


class ReverseDNS:
    """Reverse lookups with a deadline per batch and a time-limited cache of answers."""

    def __init__(self, timeout: float = 1.5, ttl: float = 3600.0, workers: int = 16):
        self.timeout, self.ttl = timeout, ttl
        self._cache: dict[str, tuple[float, str | None]] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ispflow-rdns")

    def resolve(self, addresses) -> dict[str, str | None]:
        """Host names for the given addresses (None: no name, or no answer within the deadline)."""
        now = time.monotonic()
        answers, pending = {}, {}
        for address in dict.fromkeys(str(a) for a in addresses):
            with self._lock:
                cached = self._cache.get(address)
            if cached and cached[0] > now:
                answers[address] = cached[1]
            else:
                pending[address] = self._pool.submit(_lookup, address)
        if pending:
            wait(pending.values(), timeout=self.timeout)
        for address, future in pending.items():
            name = future.result() if future.done() else None
            answers[address] = name
            if future.done():  # an unanswered lookup is retried next time
                with self._lock:
                    self._cache[address] = (now + self.ttl, name)
        return answers


def _lookup(address: str) -> str | None:
    try:
        return socket.gethostbyaddr(address)[0]
    except (OSError, UnicodeError):
        return None


reverse_dns = ReverseDNS()
