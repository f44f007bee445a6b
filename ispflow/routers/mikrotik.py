"""MikroTik RouterOS over its API (port 8728, or API-SSL on 8729) with ``routeros-api``.

What provisioning sets:

* ``/ip/traffic-flow``: ``enabled=yes``, ``interfaces=all`` (what ISPadmin expects) or the
  chosen list, and our active/inactive flow timeouts;
* exactly one ``/ip/traffic-flow/target`` for our collector, found by destination and port.
  A target left from an earlier collector of this router is updated in place, duplicates are
  removed, so provisioning twice never adds a second export.

Dialects: RouterOS 7 and v6 from 6.43 describe a target with ``dst-address`` + ``port`` and
accept ``version=ipfix``; older v6 uses ``address=IP:PORT`` and knows only versions 1, 5 and 9.
When a router already has targets, the fields it returns decide, whatever the version says.
NTP: v7's NTP client reports ``status``; v6's SNTP client only fills ``last-update-from`` /
``last-update-before`` once it has synchronised. ``/system/clock`` gives the date as
``nov/22/2026`` before 7.10 and ``2026-11-22`` from 7.10, in local time with ``gmt-offset``.

Values travel as strings (``"yes"``, never ``True``); the client wants ``plaintext_login=True``
for RouterOS 6.43 and later, and its exception texts quote the command sent, password
included, so only the router's own message is ever shown or logged.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from .base import (
    ACTIVE_TIMEOUT_S, INACTIVE_TIMEOUT_S, ApplyResult, AuthenticationFailed, ClockState, CommandRefused,
    ExportConfig, RouterDriver, RouterError, Timeout, Unreachable, Unsupported, Verification, pin_mismatch,
    register,
)

# From this version targets take dst-address + port and version=ipfix is offered.
NEW_TARGET_FIELDS_SINCE = (6, 43)
CLOCK_ISO_DATE_SINCE = (7, 10)
MONTHS = "jan feb mar apr may jun jul aug sep oct nov dec".split()

TRAFFIC_FLOW = "/ip/traffic-flow"
TARGETS = "/ip/traffic-flow/target"


def version_tuple(text: str | None) -> tuple[int, ...]:
    """``'6.49.10 (long-term)'`` → ``(6, 49, 10)``; unknown → ``(7,)``, today's default."""
    match = re.match(r"\s*(\d+(?:\.\d+)*)", text or "")
    return tuple(int(part) for part in match.group(1).split(".")) if match else (7,)


def duration_seconds(text: str) -> int | None:
    """RouterOS durations: ``1m``, ``15s``, ``1h30m``, ``00:01:00``, ``1d00:00:10``."""
    text = (text or "").strip()
    if not text or text == "none":
        return None
    old = re.fullmatch(r"(?:(\d+)w)?(?:(\d+)d)?(\d+):(\d+):(\d+)", text)
    if old:
        w, d, h, m, s = (int(x or 0) for x in old.groups())
        return (((w * 7 + d) * 24 + h) * 60 + m) * 60 + s
    units = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0, "us": 0}
    parts = re.findall(r"(\d+)(ms|us|w|d|h|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(int(n) * units[u] for n, u in parts)


def routeros_duration(seconds: int) -> str:
    return f"{seconds // 60}m" if seconds % 60 == 0 else f"{seconds}s"


@dataclass
class Operation:
    """One API call, how it reads in the RouterOS console, and what undoes it."""

    path: str
    verb: str
    args: dict[str, str]
    shown: str
    undo: "Operation | None" = None
    after: "callable | None" = field(default=None, repr=False)  # fills the undo once the call answered

    def __str__(self):
        return self.shown


def console(path: str, verb: str, args: dict[str, str], where: str = "") -> str:
    text = "/" + " ".join(part for part in path.split("/") if part) + f" {verb}"
    if where:
        text += f" {where}"
    return text + "".join(f" {k}={v}" for k, v in args.items() if k != ".id")


@register
class MikroTikDriver(RouterDriver):
    vendor = "mikrotik"
    watches_all_interfaces = True
    interface_example = "ether1,ether2"
    label = "MikroTik RouterOS (API)"
    default_port = 8728
    client_library = "routeros_api"

    def __init__(self, spec, log=None):
        super().__init__(spec, log)
        self._pool = None
        self._api = None
        self.os_version: str | None = spec.os_version

    @property
    def port(self) -> int:
        return self.spec.port or (8729 if self.spec.use_tls else 8728)

    # -- connection ----------------------------------------------------------------------
    def connect(self) -> None:
        import routeros_api

        where = f"{self.spec.host}:{self.port}"
        self.log(f"Connecting to RouterOS API{'-SSL' if self.spec.use_tls else ''} at {where}.")
        pool = routeros_api.RouterOsApiPool(
            self.spec.host, username=self.spec.username, password=self.spec.password, port=self.port,
            plaintext_login=True, use_ssl=self.spec.use_tls,
            # RouterOS's API-SSL certificate is self-signed on almost every router: it is pinned
            # instead, checked right after the handshake and before the login is sent.
            ssl_context=_pinning_context(self, where) if self.spec.use_tls else None,
        )
        pool.socket_timeout = self.spec.timeout
        self._pool = pool
        try:
            self._api = pool.get_api()
        except RouterError:
            raise
        except Exception as exc:  # noqa: BLE001  (mapped to our errors, password never shown)
            raise self._translate(exc, "logging in") from None
        resource = self._call("/system/resource", "print")
        self.os_version = resource[0].get("version", "") if resource else ""
        self.log(f"Logged in as {self.spec.username}; RouterOS {self.os_version}.")

    def close(self) -> None:
        if self._pool is not None:
            try:
                self._pool.disconnect()
            except OSError:
                pass
        self._pool = self._api = None

    def _translate(self, exc: Exception, doing: str) -> RouterError:
        from routeros_api import exceptions as ros

        where = f"{self.spec.host}:{self.port}"
        if isinstance(exc, ros.RouterOsApiCommunicationError):
            message = _text(exc.original_message)
            if doing == "logging in" and ("password" in message or "cannot log in" in message):
                return AuthenticationFailed(f"The router at {where} refused the username or password ({message}).")
            return CommandRefused(f"The router refused the command while {doing}: {message}.")
        text = str(exc.args[0] if exc.args else exc)
        if "timed out" in text or isinstance(exc, TimeoutError):
            return Timeout(f"The router at {where} stopped answering while {doing} "
                           f"(no reply within {self.spec.timeout:g} s).")
        if isinstance(exc, ros.RouterOsApiFatalCommunicationError):
            return CommandRefused(f"The router ended the session while {doing}.")
        return Unreachable(f"Cannot reach the RouterOS API at {where} ({_first_line(text) or type(exc).__name__}).")

    def _call(self, path: str, verb: str, args: dict[str, str] | None = None, doing: str | None = None):
        try:
            response = self._api.get_resource(path).call(verb, dict(args or {}))
        except Exception as exc:  # noqa: BLE001
            raise self._translate(exc, doing or f"running {path} {verb}") from None
        if verb == "add":
            return response.done_message.get("ret")
        return list(response)

    def test_connection(self) -> str:
        return self.os_version or ""

    # -- dialect -------------------------------------------------------------------------
    @property
    def version(self) -> tuple[int, ...]:
        return version_tuple(self.os_version)

    def _new_target_fields(self, rows: list[dict] | None = None) -> bool:
        for row in rows or ():
            if "dst-address" in row:
                return True
            if "address" in row:
                return False
        return self.version >= NEW_TARGET_FIELDS_SINCE

    def _target_args(self, new_fields: bool) -> dict[str, str]:
        version = self.spec.netflow_version
        if version == "ipfix" and not new_fields:
            raise Unsupported(f"RouterOS {self.os_version} cannot export IPFIX (it needs 6.43 or later); "
                              "choose NetFlow version 9.")
        if new_fields:
            return {"dst-address": self.spec.collector_host, "port": str(self.spec.collector_port), "version": version}
        return {"address": f"{self.spec.collector_host}:{self.spec.collector_port}", "version": version}

    @staticmethod
    def _destination(row: dict) -> tuple[str, int] | None:
        if "dst-address" in row:
            return row["dst-address"], int(row.get("port") or 2055)
        if "address" in row and ":" in row["address"]:
            host, _, port = row["address"].rpartition(":")
            return host, int(port) if port.isdigit() else 0
        return None

    def _flow_args(self) -> dict[str, str]:
        return {
            "enabled": "yes",
            "interfaces": ",".join(self.spec.interfaces) if self.spec.interfaces else "all",
            "active-flow-timeout": routeros_duration(ACTIVE_TIMEOUT_S),
            "inactive-flow-timeout": routeros_duration(INACTIVE_TIMEOUT_S),
        }

    # -- reading -------------------------------------------------------------------------
    def read_export(self) -> ExportConfig:
        flow = self._call(TRAFFIC_FLOW, "print")
        flow = flow[0] if flow else {}
        destinations = []
        for row in self._call(TARGETS, "print"):
            dest = self._destination(row)
            if dest and row.get("disabled", "no") in ("no", "false"):
                destinations.append((dest[0], dest[1], row.get("version", "")))
        interfaces = flow.get("interfaces", "all")
        return ExportConfig(
            enabled=flow.get("enabled") in ("yes", "true"),
            destinations=destinations,
            interfaces=() if interfaces in ("all", "") else tuple(interfaces.split(",")),
            active_timeout_s=duration_seconds(flow.get("active-flow-timeout", "")),
            inactive_timeout_s=duration_seconds(flow.get("inactive-flow-timeout", "")),
        )

    # -- planning ------------------------------------------------------------------------
    def _operations(self, flow: dict | None, targets: list[dict] | None) -> list[Operation]:
        """The calls that bring the router to the spec; ``None`` state means "assume empty"."""
        new_fields = self._new_target_fields(targets)
        wanted_target = self._target_args(new_fields)
        ours = (self.spec.collector_host, self.spec.collector_port)
        rows = targets or []
        mine = [r for r in rows if self._destination(r) == ours]
        previous = [r for r in rows if self.spec.previous_collector
                    and self._destination(r) == tuple(self.spec.previous_collector) and r not in mine]
        ops: list[Operation] = []

        def where(row):
            dest = self._destination(row)
            if "dst-address" in row:
                return f"[find dst-address={dest[0]} port={dest[1]}]"
            return f"[find address={row.get('address')}]"

        keep = mine[0] if mine else (previous[0] if previous else None)
        if keep is None:
            op = Operation(TARGETS, "add", wanted_target, console(TARGETS, "add", wanted_target))
            op.after = lambda ret, op=op: setattr(op, "undo", Operation(TARGETS, "remove", {".id": ret}, ""))
            ops.append(op)
        else:
            changes = {k: v for k, v in wanted_target.items() if keep.get(k) != v}
            if keep.get("disabled") in ("yes", "true"):
                changes["disabled"] = "no"
            if changes:
                old = {k: keep.get(k, "") for k in changes}
                ops.append(Operation(TARGETS, "set", {".id": keep["id"], **changes},
                                     console(TARGETS, "set", changes, where(keep)),
                                     undo=Operation(TARGETS, "set", {".id": keep["id"], **old}, "")))
        for extra in [r for r in mine + previous if r is not keep]:
            restore = {k: v for k, v in extra.items() if k not in ("id", "dynamic", "invalid")}
            ops.append(Operation(TARGETS, "remove", {".id": extra["id"]}, console(TARGETS, "remove", {}, where(extra)),
                                 undo=Operation(TARGETS, "add", restore, "")))
        wanted_flow = self._flow_args()
        current = flow or {}
        changes = {k: v for k, v in wanted_flow.items() if not _same_flow_value(k, current.get(k), v)}
        if flow is None:
            changes = wanted_flow
        if changes:
            old = {k: current.get(k, "") for k in changes}
            ops.append(Operation(TRAFFIC_FLOW, "set", changes, console(TRAFFIC_FLOW, "set", changes),
                                 undo=Operation(TRAFFIC_FLOW, "set", old, "")))
        return ops

    def _current_operations(self) -> list[Operation]:
        flow = self._call(TRAFFIC_FLOW, "print")
        targets = self._call(TARGETS, "print")
        return self._operations(flow[0] if flow else {}, targets)

    def plan(self, connected: bool = True) -> list[str]:
        ops = self._current_operations() if connected else self._operations(None, None)
        return [str(op) for op in ops]

    # -- changing ------------------------------------------------------------------------
    def _run(self, ops: list[Operation]) -> ApplyResult:
        done: list[Operation] = []
        for op in ops:
            self.log(f"> {op}")
            try:
                ret = self._call(op.path, op.verb, op.args, doing=f"running `{op}`")
            except CommandRefused as exc:
                raise self._rolled_back(exc, op, done, ops) from None
            except RouterError as exc:
                exc.applied = [str(o) for o in done]
                exc.not_applied = [str(o) for o in ops[len(done):]]
                raise
            if op.after:
                op.after(ret)
            done.append(op)
        return ApplyResult(applied=[str(op) for op in done], unchanged=not ops)

    def _rolled_back(self, exc: RouterError, failed: Operation, done: list[Operation], ops) -> RouterError:
        not_applied = [str(o) for o in ops[len(done):]]
        undone, still = [], [str(o) for o in done]
        try:
            for op in reversed(done):
                if op.undo is not None:
                    self.log(f"< undo {op}")
                    self._call(op.undo.path, op.undo.verb, op.undo.args, doing=f"undoing `{op}`")
                undone.append(str(op))
                still.remove(str(op))
        except RouterError as undo_exc:
            message = (f"{exc} Rolling back failed too ({undo_exc}); still applied: "
                       f"{'; '.join(still)}.")
            return CommandRefused(message, applied=still, not_applied=not_applied, rolled_back=undone)
        message = f"{exc} Nothing was left applied"
        message += f" ({len(undone)} earlier command(s) rolled back)." if undone else "."
        return CommandRefused(message, applied=[], not_applied=not_applied, rolled_back=undone)

    def apply(self) -> ApplyResult:
        return self._run(self._current_operations())

    def verify(self) -> Verification:
        config = self.read_export()
        problems = []
        if not config.enabled:
            problems.append("traffic-flow is disabled")
        wanted_interfaces = tuple(self.spec.interfaces)
        if config.interfaces != wanted_interfaces:
            problems.append(f"traffic-flow watches {','.join(config.interfaces) or 'all'} interfaces")
        ours = [d for d in config.destinations
                if (d[0], d[1]) == (self.spec.collector_host, self.spec.collector_port)]
        if not ours:
            problems.append(f"no target exports to {self.spec.collector_host}:{self.spec.collector_port}")
        elif len(ours) > 1:
            problems.append(f"{len(ours)} targets export to our collector")
        elif ours[0][2] != self.spec.netflow_version:
            problems.append(f"the target exports version {ours[0][2]}")
        return Verification(ok=not problems, problems=problems)

    def remove(self) -> ApplyResult:
        targets = self._call(TARGETS, "print")
        collectors = {(self.spec.collector_host, self.spec.collector_port)}
        if self.spec.previous_collector:
            collectors.add(tuple(self.spec.previous_collector))
        ops = []
        for row in targets:
            if self._destination(row) in collectors:
                restore = {k: v for k, v in row.items() if k not in ("id", "dynamic", "invalid")}
                dest = self._destination(row)
                shown = console(TARGETS, "remove", {}, f"[find {'dst-address' if 'dst-address' in row else 'address'}"
                                f"={dest[0] if 'dst-address' in row else row['address']}]")
                ops.append(Operation(TARGETS, "remove", {".id": row["id"]}, shown,
                                     undo=Operation(TARGETS, "add", restore, "")))
        others = [r for r in targets if self._destination(r) not in collectors]
        if ops and not others:
            flow = self._call(TRAFFIC_FLOW, "print")
            was = (flow[0] if flow else {}).get("enabled", "no")
            if was in ("yes", "true"):
                ops.append(Operation(TRAFFIC_FLOW, "set", {"enabled": "no"},
                                     console(TRAFFIC_FLOW, "set", {"enabled": "no"}),
                                     undo=Operation(TRAFFIC_FLOW, "set", {"enabled": was}, "")))
        return self._run(ops)

    # -- clock ---------------------------------------------------------------------------
    def read_clock(self) -> ClockState:
        client = self._call("/system/ntp/client", "print")
        client = client[0] if client else {}
        before = datetime.now(timezone.utc)
        clock = self._call("/system/clock", "print")
        after = datetime.now(timezone.utc)
        # Our moment of the reading is halfway through the round trip.
        read_at = before + (after - before) / 2
        clock = clock[0] if clock else {}
        enabled = client.get("enabled") in ("yes", "true")
        if "status" in client:  # RouterOS 7
            status = client["status"]
            synced = enabled and status == "synchronized"
            detail = f"NTP client {status}"
            if client.get("synced-server"):
                detail += f" to {client['synced-server']} (stratum {client.get('synced-stratum', '?')})"
        else:  # RouterOS 6 SNTP client
            source = client.get("last-update-from")
            age = duration_seconds(client.get("last-update-before", ""))
            synced = enabled and bool(source)
            if not enabled:
                detail = "SNTP client disabled"
            elif source:
                detail = f"SNTP updated from {source}"
                if age is not None:
                    detail += f" {age} s ago"
                if client.get("last-adjustment"):
                    detail += f", last adjustment {client['last-adjustment']}"
                # An SNTP client that has not heard its server for a day no longer keeps time.
                if age is not None and age > 86400:
                    synced = False
                    detail += " (stale)"
            else:
                detail = "SNTP client enabled but not synchronised yet"
        if not enabled and "status" in client:
            detail = "NTP client disabled"
        router_time = parse_clock(clock)
        if router_time is not None:
            router_time += timedelta(milliseconds=500)  # RouterOS truncates to whole seconds
        return ClockState(ntp_enabled=enabled, synchronized=synced, detail=detail, read_at=read_at,
                          router_time=router_time)


def parse_clock(clock: dict) -> datetime | None:
    """UTC time from ``/system/clock`` (local ``date`` + ``time`` and ``gmt-offset``)."""
    date, time = clock.get("date", ""), clock.get("time", "")
    old = re.fullmatch(r"([a-z]{3})/(\d{1,2})/(\d{4})", date.lower())
    try:
        if old:
            day = datetime(int(old.group(3)), MONTHS.index(old.group(1)) + 1, int(old.group(2)))
        else:
            day = datetime.strptime(date, "%Y-%m-%d")
        h, m, s = (int(x) for x in time.split(":"))
    except (ValueError, IndexError):
        return None
    local = day.replace(hour=h, minute=m, second=s)
    offset = re.fullmatch(r"([+-])(\d{1,2}):(\d{2})", clock.get("gmt-offset", "+00:00").strip())
    delta = timedelta(0)
    if offset:
        delta = timedelta(hours=int(offset.group(2)), minutes=int(offset.group(3)))
        if offset.group(1) == "-":
            delta = -delta
    return (local - delta).replace(tzinfo=timezone.utc)


def _same_flow_value(key: str, current: str | None, wanted: str) -> bool:
    if current is None:
        return False
    if key.endswith("timeout"):
        return duration_seconds(current) == duration_seconds(wanted)
    if key == "enabled":
        return (current in ("yes", "true")) == (wanted == "yes")
    return current == wanted


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def _pinning_context(driver: "MikroTikDriver", where: str):
    """A TLS client context that records the router's certificate and refuses one not pinned."""
    import hashlib
    import ssl

    class PinningContext(ssl.SSLContext):
        def wrap_socket(self, sock, *args, **kwargs):
            wrapped = super().wrap_socket(sock, *args, **kwargs)
            presented = "tls-sha256 " + hashlib.sha256(wrapped.getpeercert(binary_form=True)).hexdigest()
            driver.presented_key = presented
            pinned = driver.spec.pinned_key
            if pinned and pinned != presented:
                wrapped.close()
                raise pin_mismatch(where, pinned, presented)
            return wrapped

    context = PinningContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context
