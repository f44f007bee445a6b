"""The router driver interface and the registry that maps a vendor name to its driver.

Every vendor module subclasses ``RouterDriver`` and registers itself with ``@register``, the
same way Redash's query runners do: the rest of ispflow (service, jobs, panel, CLI) only ever
calls the methods below and never imports a vendor module by name.

A driver is used as a context manager: entering connects and logs in, leaving disconnects.
It never sees the database; it is given a ``RouterSpec`` (what to connect to and what the
export should look like) and a ``log`` callable for the job's progress lines.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, ClassVar

from . import grammar

NETFLOW_VERSIONS = ("5", "9", "ipfix")

# The timeouts we ask routers to use: flows reach the collector within about a minute, which
# is what retention requests need, without flooding it with partial records.
ACTIVE_TIMEOUT_S = 60
INACTIVE_TIMEOUT_S = 15


class RouterError(Exception):
    """A router operation failed; ``str()`` is one or two sentences for people.

    ``applied`` lists the commands that took effect (and were not rolled back),
    ``not_applied`` those that did not, so a job log can say exactly where the router stands.
    """

    def __init__(self, message: str, applied: list[str] | None = None, not_applied: list[str] | None = None,
                 rolled_back: list[str] | None = None):
        super().__init__(message)
        self.applied = list(applied or [])
        self.not_applied = list(not_applied or [])
        self.rolled_back = list(rolled_back or [])


class AuthenticationFailed(RouterError):
    """The router refused the username or password."""


class Unreachable(RouterError):
    """Nothing answered at the address and port, or the connection broke."""


class Timeout(RouterError):
    """The router stopped answering in the middle of a conversation."""


class CommandRefused(RouterError):
    """The router rejected a command (unknown on this platform, bad value)."""


class Unsupported(RouterError):
    """The requested export cannot be configured on this router or OS version."""


class PinMismatch(RouterError):
    """The router presented another TLS certificate or SSH host key than the one pinned for it."""


class UnsafeValue(RouterError):
    """A value meant for a router does not fit its strict grammar (see ``grammar``); nothing was sent."""


@dataclass(frozen=True)
class RouterSpec:
    """Where a router is, how to log in, and how its export should look."""

    host: str
    username: str
    password: str = field(repr=False)
    collector_host: str
    collector_port: int
    port: int | None = None
    use_tls: bool = False
    interfaces: tuple[str, ...] = ()  # empty means all interfaces
    netflow_version: str = "9"
    source_interface: str | None = None
    # The collector this router was last provisioned with, so a changed collector updates
    # that export instead of adding a second one.
    previous_collector: tuple[str, int] | None = None
    os_version: str | None = None  # last known, used for previews without connecting
    timeout: float = 15.0
    # What the router presented when it was first reached (``key_text``); None: pin what comes.
    pinned_key: str | None = None

    def __post_init__(self):
        """Refuse a spec any of whose values could smuggle a command to the router."""
        checks = [("host", grammar.host, self.host), ("username", grammar.username, self.username),
                  ("password", grammar.password, self.password)]
        if self.port is not None:
            checks.append(("port", grammar.port, self.port))
        if self.collector_host or self.collector_port:  # "" and 0: a clock check needs no collector
            checks += [("collector", grammar.ip_address, self.collector_host),
                       ("collector port", grammar.port, self.collector_port)]
        checks += [("interfaces", grammar.interface, name) for name in self.interfaces]
        if self.source_interface is not None:
            checks.append(("source interface", grammar.interface, self.source_interface))
        if self.previous_collector is not None:
            checks += [("previous collector", grammar.ip_address, self.previous_collector[0]),
                       ("previous collector port", grammar.port, self.previous_collector[1])]
        for name, check, value in checks:
            try:
                check(value)
            except ValueError as exc:
                raise UnsafeValue(f"Nothing was sent to the router: its {name} is refused ({exc}).") from None
        if self.netflow_version not in NETFLOW_VERSIONS:
            raise UnsafeValue(f"Nothing was sent to the router: export format must be one of {', '.join(NETFLOW_VERSIONS)}.")


@dataclass
class ExportConfig:
    """The router's export configuration as read back from it."""

    enabled: bool
    destinations: list[tuple[str, int, str]] = field(default_factory=list)  # (host, port, version)
    interfaces: tuple[str, ...] = ()
    active_timeout_s: int | None = None
    inactive_timeout_s: int | None = None

    def exports_to(self, host: str, port: int) -> bool:
        return any(h == host and p == port for h, p, _ in self.destinations)


@dataclass
class ClockState:
    """NTP state and clock of a router, read at ``read_at`` (our clock, UTC)."""

    ntp_enabled: bool
    synchronized: bool
    detail: str
    read_at: datetime
    router_time: datetime | None = None  # UTC

    @property
    def skew_s(self) -> float | None:
        """Router clock minus ours, in seconds (positive: the router is ahead)."""
        if self.router_time is None:
            return None
        return (self.router_time - self.read_at).total_seconds()


@dataclass
class ApplyResult:
    """What a provisioning or removal did to the router."""

    applied: list[str] = field(default_factory=list)
    unchanged: bool = False

    @property
    def summary(self) -> str:
        if self.unchanged or not self.applied:
            return "The router was already configured as planned; nothing was changed."
        return f"Applied {len(self.applied)} command(s)."


@dataclass
class Verification:
    ok: bool
    problems: list[str] = field(default_factory=list)


Log = Callable[[str], None]


def fingerprint(key_text: str | None) -> str:
    """How a pinned key is shown to people: OpenSSH's ``SHA256:…`` for host keys, hex for certificates."""
    import base64
    import hashlib

    if not key_text:
        return "-"
    kind, _, body = key_text.partition(" ")
    if kind == "tls-sha256":
        return "TLS certificate SHA256 " + ":".join(body[i:i + 2].upper() for i in range(0, len(body), 2))
    digest = hashlib.sha256(base64.b64decode(body)).digest()
    return f"{kind} SHA256:{base64.b64encode(digest).decode().rstrip('=')}"


def pin_mismatch(where: str, pinned: str, presented: str) -> PinMismatch:
    return PinMismatch(
        f"The router at {where} presented {fingerprint(presented)}, not the pinned {fingerprint(pinned)}; "
        "nothing was sent. If the router's key or certificate really changed, an admin re-pins it on the "
        "router page (or `ispflow routers repin`).")


class RouterDriver(abc.ABC):
    """One vendor's way of configuring NetFlow export and reading the clock."""

    vendor: ClassVar[str]
    label: ClassVar[str]
    default_port: ClassVar[int]
    versions: ClassVar[tuple[str, ...]] = NETFLOW_VERSIONS
    client_library: ClassVar[str] = ""  # the module the driver talks through
    # Whether an empty interface list can mean "all interfaces" (RouterOS' interfaces=all).
    watches_all_interfaces: ClassVar[bool] = False
    interface_example: ClassVar[str] = ""  # names as the router prints them, for error messages

    def __init__(self, spec: RouterSpec, log: Log | None = None):
        self.spec = spec
        self.log: Log = log or (lambda line: None)
        # The TLS certificate or SSH host key the router presented on connecting ("KIND BODY"),
        # checked against ``spec.pinned_key`` before any password is sent; None over plain TCP.
        self.presented_key: str | None = None

    @classmethod
    def enabled(cls) -> bool:
        """Whether the client library this driver needs is importable."""
        import importlib.util

        return not cls.client_library or importlib.util.find_spec(cls.client_library) is not None

    @property
    def port(self) -> int:
        return self.spec.port or self.default_port

    # -- connection ------------------------------------------------------------------------
    @abc.abstractmethod
    def connect(self) -> None:
        """Connect and log in; raises AuthenticationFailed, Unreachable or Timeout."""

    @abc.abstractmethod
    def close(self) -> None:
        ...

    def __enter__(self):
        try:
            self.connect()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    @abc.abstractmethod
    def test_connection(self) -> str:
        """Log in and return the router's OS version string."""

    # -- export configuration --------------------------------------------------------------
    @abc.abstractmethod
    def read_export(self) -> ExportConfig:
        """The export configuration the router has now."""

    @abc.abstractmethod
    def plan(self, connected: bool = True) -> list[str]:
        """The commands provisioning would send, as a person would type them.

        Connected, the plan is computed against the router's current configuration (only what
        differs); not connected, it is the full configuration for the last known OS version.
        """

    @abc.abstractmethod
    def apply(self) -> ApplyResult:
        """Make the router export as the spec says; running it twice changes nothing."""

    @abc.abstractmethod
    def verify(self) -> Verification:
        """Read the configuration back and compare it with the spec."""

    @abc.abstractmethod
    def remove(self) -> ApplyResult:
        """Take ispflow's export configuration off the router."""

    @abc.abstractmethod
    def read_clock(self) -> ClockState:
        """The router's NTP client state and its clock."""


DRIVERS: dict[str, type[RouterDriver]] = {}


def register(driver: type[RouterDriver]) -> type[RouterDriver]:
    """Class decorator: make a driver available under its ``vendor`` name."""
    DRIVERS[driver.vendor] = driver
    return driver


def driver_for(vendor: str) -> type[RouterDriver]:
    from . import cisco, junos, mikrotik, vyos  # noqa: F401  (drivers register on import)

    try:
        return DRIVERS[vendor]
    except KeyError:
        raise ValueError(f"unknown vendor {vendor!r}; expected one of {', '.join(vendors())}") from None


def vendors() -> list[str]:
    from . import cisco, junos, mikrotik, vyos  # noqa: F401

    return list(DRIVERS)
