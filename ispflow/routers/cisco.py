"""Cisco IOS, IOS-XE and NX-OS over SSH with ``netmiko``.

* IOS (``cisco_ios``): classic NetFlow — ``ip flow-export destination/version/source``,
  ``ip flow-cache timeout`` and ``ip flow ingress`` on each watched interface.
* IOS-XE (``cisco_xe``) and NX-OS (``cisco_nxos``): Flexible NetFlow — a ``flow record``, a
  ``flow exporter`` and a ``flow monitor`` named ``ISPFLOW-*``, attached with
  ``ip flow monitor ISPFLOW-MONITOR input``; NX-OS first needs ``feature netflow``.

The plan is computed against ``show running-config`` so only missing lines are sent. Each
line is sent on its own and checked for the CLI's ``%`` error messages, so a refusal is
caught at the exact line; everything applied before it is then undone (the inverse of each
step, computed from the configuration read before) and the configuration is not saved, which
leaves the router as it was. On success the configuration is saved (``write mem`` /
``copy running-config startup-config``).

Cisco routers are given the interfaces to watch by name: unlike RouterOS there is no "all".
"""
from __future__ import annotations

import abc
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from .base import (
    ACTIVE_TIMEOUT_S, INACTIVE_TIMEOUT_S, ApplyResult, ClockState, CommandRefused, ExportConfig, RouterError,
    Unsupported, Verification, register,
)
from .ssh_session import SSHDriver

EXPORTER, RECORD, MONITOR = "ISPFLOW-EXPORTER", "ISPFLOW-RECORD", "ISPFLOW-MONITOR"
# Lines the CLI starts with '%' are errors, except warnings it prints for information.
ERROR_PATTERN = r"^\s*%(?!\s*Warning).*$"
MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()

XE_RECORD = [
    "match ipv4 source address", "match ipv4 destination address", "match ipv4 protocol",
    "match transport source-port", "match transport destination-port", "match interface input",
    "collect interface output", "collect transport tcp flags", "collect counter bytes long",
    "collect counter packets long", "collect timestamp absolute first", "collect timestamp absolute last",
]
NXOS_RECORD = [
    "match ipv4 source address", "match ipv4 destination address", "match ip protocol",
    "match transport source-port", "match transport destination-port", "collect transport tcp flags",
    "collect counter bytes", "collect counter packets", "collect timestamp sys-uptime first",
    "collect timestamp sys-uptime last",
]


@dataclass
class Step:
    """Configuration lines sent together (a block or one global line) and their inverse."""

    lines: list[str]
    undo: list[str] = field(default_factory=list)
    # For a block that existed before: the inverse of each line after the head, so a block
    # refused half-way undoes only the lines that went in.
    child_undo: list[str] | None = None

    def undo_first(self, count: int) -> list[str]:
        """The inverse of the first ``count`` lines only."""
        if self.child_undo is None or count < 1:
            return self.undo if count > 0 else []
        return [self.lines[0], *self.child_undo[:count - 1], "exit"]

    def shown(self) -> list[str]:
        if len(self.lines) == 1:
            return list(self.lines)
        head, *rest = self.lines
        return [head] + [" " + line for line in rest if line != "exit"] + ["exit"]


class RunningConfig:
    """``show running-config`` as top-level lines with their indented children."""

    def __init__(self, text: str):
        self.blocks: list[tuple[str, list[str]]] = []
        for raw in text.splitlines():
            line = raw.rstrip()
            if not line.strip() or line.lstrip().startswith("!") or line.startswith("Building configuration") \
                    or line.startswith("Current configuration") or line == "end":
                continue
            if line[0].isspace():
                if self.blocks:
                    self.blocks[-1][1].append(line.strip())
            else:
                self.blocks.append((line, []))

    def children(self, head: str) -> list[str] | None:
        for line, children in self.blocks:
            if line == head:
                return children
        return None

    def has(self, line: str) -> bool:
        return any(head == line for head, _ in self.blocks)

    def matching(self, pattern: str) -> list[str]:
        return [head for head, _ in self.blocks if re.fullmatch(pattern, head)]


class CiscoDriver(SSHDriver):
    """Shared by the three platforms; subclasses say which NetFlow dialect they speak."""

    error_pattern = ERROR_PATTERN  # how the CLI says a configuration line was refused
    interface_example = "GigabitEthernet0/0,GigabitEthernet0/1"

    @staticmethod
    def version_of(show_version: str) -> str:
        return parse_version(show_version)

    # -- the running configuration ----------------------------------------------------
    def running_config(self) -> RunningConfig:
        return RunningConfig(self._show("show running-config"))

    # -- the dialect (overridden per platform) --------------------------------------------
    def _check_spec(self) -> None:
        if not self.spec.interfaces:
            raise Unsupported("Cisco routers need the list of interfaces to watch (for example GigabitEthernet0/0).")

    @abc.abstractmethod
    def desired_steps(self, config: RunningConfig) -> list[Step]:
        """The configuration steps that bring ``config`` to our export, in this dialect."""

    @abc.abstractmethod
    def removal_steps(self, config: RunningConfig) -> list[Step]:
        """The steps that take our export configuration out of ``config``."""

    @abc.abstractmethod
    def read_export(self) -> ExportConfig:
        """Our export as the router's running configuration shows it."""

    # -- planning and applying -----------------------------------------------------------
    def plan(self, connected: bool = True) -> list[str]:
        self._check_spec()
        config = self.running_config() if connected else RunningConfig(self._empty_config())
        return [line for step in self.desired_steps(config) for line in step.shown()]

    def _empty_config(self) -> str:
        return "\n".join(f"interface {name}\n no shutdown" for name in self.spec.interfaces)

    def apply(self) -> ApplyResult:
        self._check_spec()
        return self._run(self.desired_steps(self.running_config()))

    def remove(self) -> ApplyResult:
        return self._run(self.removal_steps(self.running_config()))

    def _run(self, steps: list[Step]) -> ApplyResult:
        if not steps:
            return ApplyResult(unchanged=True)
        self._enter_config()
        done: list[Step] = []
        for step in steps:
            try:
                self._send(step.lines)
            except CommandRefused as exc:
                raise self._roll_back(exc, step.undo_first(getattr(exc, "index", 0)), done, steps) from None
            except RouterError as exc:
                exc.applied = [line for s in done for line in s.shown()]
                exc.not_applied = [line for s in steps[len(done):] for line in s.shown()]
                raise
            done.append(step)
        self._leave_config()
        try:
            self.log("> save configuration")
            self.conn.save_config()
        except Exception as exc:  # noqa: BLE001
            error = self._translate(exc, "saving the configuration")
            error.applied = [line for s in done for line in s.shown()]
            error.not_applied = ["save configuration (the change is live but not in the startup configuration)"]
            raise error from None
        return ApplyResult(applied=[line for s in done for line in s.shown()])

    def _roll_back(self, exc: RouterError, failed_undo: list[str], done: list[Step], steps: list[Step]) -> RouterError:
        """Undo the lines of the refused step that went in, then ``done``, newest first."""
        not_applied = [line for s in steps[len(done):] for line in s.shown()]
        undone: list[str] = []
        try:
            # Back to global configuration mode from whatever submode the failure left us in.
            self._leave_config()
            self._enter_config()
            if failed_undo:
                self.log("< undo")
                self._send(failed_undo)
            for step in reversed(done):
                if step.undo:
                    self.log("< undo")
                    self._send(step.undo)
                undone += step.shown()
            self._leave_config()
        except RouterError as undo_exc:
            still = [line for s in done for line in s.shown() if line not in undone]
            return CommandRefused(f"{exc} Rolling back failed too ({undo_exc}); still applied (not saved): "
                                  f"{'; '.join(still)}.", applied=still, not_applied=not_applied, rolled_back=undone)
        message = f"{exc} Nothing was left applied and the saved configuration was not touched"
        message += f" ({len(done)} earlier step(s) rolled back)." if done else "."
        return CommandRefused(message, applied=[], not_applied=not_applied, rolled_back=undone)

    # -- verification --------------------------------------------------------------------
    def verify(self) -> Verification:
        config = self.read_export()
        problems = []
        if not config.enabled:
            problems.append("NetFlow export is not configured")
        ours = [d for d in config.destinations if (d[0], d[1]) == (self.spec.collector_host, self.spec.collector_port)]
        if not ours:
            problems.append(f"nothing exports to {self.spec.collector_host}:{self.spec.collector_port}")
        elif ours[0][2] != self.spec.netflow_version:
            problems.append(f"the export uses version {ours[0][2]}")
        missing = [name for name in self.spec.interfaces if name not in config.interfaces]
        if missing:
            problems.append(f"not watching {', '.join(missing)}")
        return Verification(ok=not problems, problems=problems)

    # -- clock ---------------------------------------------------------------------------
    def read_clock(self) -> ClockState:
        synced, enabled, detail = self._ntp_state()
        before = datetime.now(timezone.utc)
        clock_text = self._show("show clock")
        read_at = before + (datetime.now(timezone.utc) - before) / 2  # halfway through the round trip
        zones = self._zone_offsets()
        return ClockState(ntp_enabled=enabled, synchronized=synced, detail=detail, read_at=read_at,
                          router_time=parse_show_clock(clock_text, zones))

    def _ntp_state(self) -> tuple[bool, bool, str]:
        text = self._show("show ntp status")
        if re.search(r"NTP is not enabled", text):
            return False, False, "NTP is not enabled"
        match = re.search(r"Clock is (synchronized|unsynchronized)[^\n]*", text)
        if not match:
            return False, True, "show ntp status said nothing about synchronisation"
        return match.group(1) == "synchronized", True, match.group(0).strip()

    def _zone_offsets(self) -> dict[str, timedelta]:
        """Offsets of the zone names ``show clock`` may print, from ``clock timezone``/``summer-time``."""
        zones = {"UTC": timedelta(0), "GMT": timedelta(0)}
        text = self._show("show running-config | include clock")
        for match in re.finditer(r"clock timezone (\S+) (-?\d+)(?: (\d+))?", text):
            hours, minutes = int(match.group(2)), int(match.group(3) or 0)
            sign = -1 if hours < 0 else 1
            zones[match.group(1)] = timedelta(hours=hours, minutes=sign * minutes)
            standard = zones[match.group(1)]
            for summer in re.finditer(r"clock summer-time (\S+)", text):
                zones[summer.group(1)] = standard + timedelta(hours=1)
        return zones


def parse_version(text: str) -> str:
    match = re.search(r"NXOS: version (\S+)", text) or re.search(r"Version ([\w.()]+)", text)
    return match.group(1) if match else ""


def parse_show_clock(text: str, zones: dict[str, timedelta]) -> datetime | None:
    """UTC from ``*10:15:30.123 CET Sun Nov 22 2026``; None for an unknown zone name."""
    match = re.search(r"[*.]?(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d+))?\s+(\S+)\s+\w{3}\s+(\w{3})\s+(\d{1,2})\s+(\d{4})", text)
    if not match or match.group(6) not in MONTHS or match.group(5) not in zones:
        return None
    h, m, s = (int(match.group(i)) for i in (1, 2, 3))
    millis = int((match.group(4) or "0")[:3].ljust(3, "0"))
    local = datetime(int(match.group(8)), MONTHS.index(match.group(6)) + 1, int(match.group(7)), h, m, s,
                     millis * 1000)
    return (local - zones[match.group(5)]).replace(tzinfo=timezone.utc)


def _block_step(head: str, wanted: list[str], current: list[str] | None, replaces: tuple[str, ...] = ()) -> Step | None:
    """A step that makes block ``head`` contain ``wanted`` lines, with its inverse.

    ``replaces`` are the keywords whose line replaces an earlier one with the same keyword
    (``destination 10.0.0.1`` replaces ``destination 10.0.0.2``).
    """
    have = current or []
    missing = [line for line in wanted if line not in have]
    if current is not None and not missing:
        return None
    if current is None:
        return Step([head, *missing, "exit"], undo=[f"no {head}"])
    undo = []
    for line in missing:
        keyword = next((k for k in replaces if line.startswith(k + " ")), None)
        old = next((h for h in have if keyword and h.startswith(keyword + " ")), None)
        undo.append(old if old else f"no {line}")
    return Step([head, *missing, "exit"], undo=[head, *undo, "exit"], child_undo=undo)


def _interface_steps(config: RunningConfig, interfaces, line: str) -> list[Step]:
    steps = []
    for name in interfaces:
        head = f"interface {name}"
        children = config.children(head)
        if children is None or line not in children:
            steps.append(Step([head, line, "exit"], undo=[head, f"no {line}", "exit"]))
    return steps


def _removal_of_block(config: RunningConfig, head: str) -> list[Step]:
    children = config.children(head)
    if children is None:
        return []
    return [Step([f"no {head}"], undo=[head, *children, "exit"])]


@register
class CiscoIOSDriver(CiscoDriver):
    vendor = "cisco_ios"
    label = "Cisco IOS (classic NetFlow)"
    device_type = "cisco_ios"
    versions = ("5", "9")

    def _check_spec(self) -> None:
        super()._check_spec()
        if self.spec.netflow_version not in self.versions:
            raise Unsupported("Classic NetFlow on IOS exports version 5 or 9, not IPFIX; choose 9 "
                              "(or use IOS-XE's Flexible NetFlow).")

    def _destination(self, host, port) -> str:
        return f"ip flow-export destination {host} {port}"

    def desired_steps(self, config: RunningConfig) -> list[Step]:
        steps = []
        ours = self._destination(self.spec.collector_host, self.spec.collector_port)
        if self.spec.previous_collector:
            old = self._destination(*self.spec.previous_collector)
            if old != ours and config.has(old):
                steps.append(Step([f"no {old}"], undo=[old]))
        wanted = [f"ip flow-export version {self.spec.netflow_version}", ours]
        if self.spec.source_interface:
            wanted.append(f"ip flow-export source {self.spec.source_interface}")
        wanted += [f"ip flow-cache timeout active {max(1, ACTIVE_TIMEOUT_S // 60)}",
                   f"ip flow-cache timeout inactive {max(10, INACTIVE_TIMEOUT_S)}"]
        for line in wanted:
            if config.has(line):
                continue
            if line == ours:
                steps.append(Step([line], undo=[f"no {line}"]))
                continue
            key = re.sub(r"\s\S+$", "", line)
            old = next((h for h, _ in config.blocks if re.sub(r"\s\S+$", "", h) == key), None)
            steps.append(Step([line], undo=[old] if old else [f"no {line}"]))
        return steps + _interface_steps(config, self.spec.interfaces, "ip flow ingress")

    def removal_steps(self, config: RunningConfig) -> list[Step]:
        steps = []
        for name in self.spec.interfaces:
            children = config.children(f"interface {name}") or []
            if "ip flow ingress" in children:
                steps.append(Step([f"interface {name}", "no ip flow ingress", "exit"],
                                  undo=[f"interface {name}", "ip flow ingress", "exit"]))
        collectors = {(self.spec.collector_host, self.spec.collector_port)}
        if self.spec.previous_collector:
            collectors.add(tuple(self.spec.previous_collector))
        for host, port in sorted(collectors):
            line = self._destination(host, port)
            if config.has(line):
                steps.append(Step([f"no {line}"], undo=[line]))
        return steps

    def read_export(self) -> ExportConfig:
        config = self.running_config()
        version = next((h.split()[-1] for h in config.matching(r"ip flow-export version \d+")), "9")
        destinations = []
        for head in config.matching(r"ip flow-export destination \S+ \d+"):
            _, _, _, host, port = head.split()
            destinations.append((host, int(port), version))
        interfaces = tuple(head.split(" ", 1)[1] for head, children in config.blocks
                           if head.startswith("interface ") and "ip flow ingress" in children)
        active = next((int(h.split()[-1]) * 60 for h in config.matching(r"ip flow-cache timeout active \d+")), None)
        inactive = next((int(h.split()[-1]) for h in config.matching(r"ip flow-cache timeout inactive \d+")), None)
        return ExportConfig(enabled=bool(destinations and interfaces), destinations=destinations,
                            interfaces=interfaces, active_timeout_s=active, inactive_timeout_s=inactive)


class FlexibleNetFlowDriver(CiscoDriver):
    record_lines: list[str]
    monitor_input = f"ip flow monitor {MONITOR} input"

    @abc.abstractmethod
    def exporter_lines(self) -> list[str]:
        """The lines of our ``flow exporter`` block on this platform."""

    def monitor_lines(self) -> list[str]:
        return [f"record {RECORD}", f"exporter {EXPORTER}"]

    def prelude_steps(self, config: RunningConfig) -> list[Step]:
        return []

    def desired_steps(self, config: RunningConfig) -> list[Step]:
        steps = self.prelude_steps(config)
        for head, wanted, replaces in (
            (f"flow record {RECORD}", self.record_lines, ()),
            (f"flow exporter {EXPORTER}", self.exporter_lines(),
             ("destination", "transport udp", "source", "export-protocol", "version")),
            (f"flow monitor {MONITOR}", self.monitor_lines(),
             ("record", "exporter", "cache timeout active", "cache timeout inactive")),
        ):
            step = _block_step(head, wanted, config.children(head), replaces)
            if step:
                steps.append(step)
        return steps + _interface_steps(config, self.spec.interfaces, self.monitor_input)

    def removal_steps(self, config: RunningConfig) -> list[Step]:
        steps = []
        for head, children in config.blocks:
            if head.startswith("interface ") and self.monitor_input in children:
                steps.append(Step([head, f"no {self.monitor_input}", "exit"], undo=[head, self.monitor_input, "exit"]))
        for head in (f"flow monitor {MONITOR}", f"flow exporter {EXPORTER}", f"flow record {RECORD}"):
            steps += _removal_of_block(config, head)
        return steps

    @abc.abstractmethod
    def _exported_version(self, children: list[str]) -> str:
        """The NetFlow version a ``flow exporter`` block's lines select."""

    def read_export(self) -> ExportConfig:
        config = self.running_config()
        exporter = config.children(f"flow exporter {EXPORTER}") or []
        monitor = config.children(f"flow monitor {MONITOR}") or []
        host = next((c.split()[1] for c in exporter if c.startswith("destination ")), None)
        port = next((int(c.split()[2]) for c in exporter if c.startswith("transport udp ")), None)
        destinations = [(host, port, self._exported_version(exporter))] if host and port else []
        attached = f"exporter {EXPORTER}" in monitor and f"record {RECORD}" in monitor
        interfaces = tuple(head.split(" ", 1)[1] for head, children in config.blocks
                           if head.startswith("interface ") and self.monitor_input in children)
        timeouts = {c.split()[2]: int(c.split()[3]) for c in monitor if c.startswith("cache timeout ")}
        return ExportConfig(enabled=bool(destinations and attached and interfaces),
                            destinations=destinations if attached else [], interfaces=interfaces,
                            active_timeout_s=timeouts.get("active"), inactive_timeout_s=timeouts.get("inactive"))


@register
class CiscoXEDriver(FlexibleNetFlowDriver):
    vendor = "cisco_xe"
    label = "Cisco IOS-XE (Flexible NetFlow)"
    device_type = "cisco_xe"
    record_lines = XE_RECORD
    PROTOCOLS = {"5": "netflow-v5", "9": "netflow-v9", "ipfix": "ipfix"}

    def exporter_lines(self) -> list[str]:
        lines = [f"destination {self.spec.collector_host}", f"transport udp {self.spec.collector_port}"]
        if self.spec.source_interface:
            lines.append(f"source {self.spec.source_interface}")
        return lines + [f"export-protocol {self.PROTOCOLS[self.spec.netflow_version]}"]

    def monitor_lines(self) -> list[str]:
        return super().monitor_lines() + [f"cache timeout active {ACTIVE_TIMEOUT_S}",
                                          f"cache timeout inactive {INACTIVE_TIMEOUT_S}"]

    def _exported_version(self, children: list[str]) -> str:
        protocol = next((c.split()[1] for c in children if c.startswith("export-protocol ")), "netflow-v9")
        return {v: k for k, v in self.PROTOCOLS.items()}.get(protocol, protocol)


@register
class CiscoNXOSDriver(FlexibleNetFlowDriver):
    vendor = "cisco_nxos"
    interface_example = "Ethernet1/1,Ethernet1/2"
    label = "Cisco NX-OS (Flexible NetFlow)"
    device_type = "cisco_nxos"
    record_lines = NXOS_RECORD
    versions = ("9",)

    def _check_spec(self) -> None:
        super()._check_spec()
        if self.spec.netflow_version != "9":
            raise Unsupported("NX-OS exports NetFlow version 9 only; choose 9.")

    def prelude_steps(self, config: RunningConfig) -> list[Step]:
        if config.has("feature netflow"):
            return []
        return [Step(["feature netflow"], undo=["no feature netflow"])]

    def exporter_lines(self) -> list[str]:
        lines = [f"destination {self.spec.collector_host}", f"transport udp {self.spec.collector_port}"]
        if self.spec.source_interface:
            lines.append(f"source {self.spec.source_interface}")
        return lines + ["version 9"]

    def _exported_version(self, children: list[str]) -> str:
        return next((c.split()[1] for c in children if c.startswith("version ")), "9")

    def _empty_config(self) -> str:
        return "\n".join(f"interface {name}\n  no shutdown" for name in self.spec.interfaces)

    def _ntp_state(self) -> tuple[bool, bool, str]:
        text = self._show("show ntp peer-status")
        total = re.search(r"Total peers\s*:\s*(\d+)", text)
        if total and int(total.group(1)) == 0:
            return False, False, "no NTP server configured"
        selected = re.search(r"^\*(\S+)", text, re.M)
        if selected:
            return True, True, f"synchronised to {selected.group(1)}"
        return False, True, "no NTP peer selected for synchronisation"
