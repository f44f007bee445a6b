"""Juniper Junos (MX and other Trio routers) with inline J-Flow over SSH: ``juniper_junos`` in netmiko.

Inline J-Flow samples in the forwarding plane and exports IPFIX or NetFlow v9 (not v5) to the
collector: a ``services flow-monitoring`` template, a sampling instance under
``forwarding-options sampling`` bound to the FPCs of the watched interfaces, and
``family inet sampling input`` on each watched unit. Every packet is sampled (``input rate 1``),
as retention needs every flow. Inline J-Flow needs a source address: the ``inline-jflow
source-address`` is the address ispflow reaches the router at (its management address, when it
is an IPv4 address). Interfaces are given as ``ge-0/0/1`` (unit 0) or ``ge-0/0/1.100``.
"""
from __future__ import annotations

import ipaddress
import re
from datetime import datetime, timezone

from .base import ACTIVE_TIMEOUT_S, INACTIVE_TIMEOUT_S, ExportConfig, Unsupported, register
from .candidate_config import CandidateConfigDriver, SetConfig

INSTANCE = "ispflow"
TEMPLATE = "ispflow-ipv4"
FORMATS = {"9": "version9", "ipfix": "version-ipfix"}
SAMPLING = f"forwarding-options sampling instance {INSTANCE}"
ERROR_PATTERN = r"(?m)^\s*(syntax error|error:|unknown command|invalid )"


def unit_of(name: str) -> tuple[str, str]:
    """(physical interface, unit) of ``ge-0/0/1.100``; unit 0 when none is given."""
    physical, _, unit = name.partition(".")
    return physical, unit or "0"


def fpc_of(name: str) -> str | None:
    match = re.match(r"[a-z]+-(\d+)/\d+/\d+", name)
    return match.group(1) if match else None


@register
class JunosDriver(CandidateConfigDriver):
    vendor = "juniper_junos"
    interface_example = "ge-0/0/1,xe-1/0/0.100"
    label = "Juniper Junos (inline J-Flow)"
    device_type = "juniper_junos"
    versions = ("9", "ipfix")
    error_pattern = ERROR_PATTERN
    show_config = "show configuration | display set"
    discard = "rollback 0"

    @staticmethod
    def version_of(show_version: str) -> str:
        match = re.search(r"^Junos: (\S+)", show_version, re.M) or re.search(r"JUNOS .*\[(\S+)\]", show_version)
        return match.group(1) if match else ""

    def _check_spec(self) -> None:
        super()._check_spec()
        if self._source_address() is None:
            raise Unsupported("Inline J-Flow needs an IPv4 source address: add the router by its IPv4 address.")
        if any(fpc_of(name) is None for name in self.spec.interfaces):
            raise Unsupported("Give Junos interfaces as TYPE-FPC/PIC/PORT, for example ge-0/0/1 or xe-1/0/0.100.")

    def _source_address(self) -> str | None:
        try:
            address = ipaddress.ip_address(self.spec.host)
        except ValueError:
            return None
        return str(address) if address.version == 4 else None

    def _server(self, host: str) -> str:
        return f"{SAMPLING} family inet output flow-server {host}"

    def wanted(self) -> list[str]:
        fmt = FORMATS[self.spec.netflow_version]
        template = f"services flow-monitoring {fmt} template {TEMPLATE}"
        server = self._server(self.spec.collector_host)
        lines = [f"set {template} ipv4-template",
                 f"set {template} flow-active-timeout {ACTIVE_TIMEOUT_S}",
                 f"set {template} flow-inactive-timeout {INACTIVE_TIMEOUT_S}",
                 f"set {SAMPLING} input rate 1",
                 f"set {server} port {self.spec.collector_port}",
                 f"set {server} {fmt} template {TEMPLATE}",
                 f"set {SAMPLING} family inet output inline-jflow source-address {self._source_address()}"]
        for fpc in sorted({fpc_of(name) for name in self.spec.interfaces}):
            lines.append(f"set chassis fpc {fpc} sampling-instance {INSTANCE}")
        for name in self.spec.interfaces:
            physical, unit = unit_of(name)
            lines.append(f"set interfaces {physical} unit {unit} family inet sampling input")
        return lines

    def stale(self, config: SetConfig) -> list[str]:
        ours = self._server(self.spec.collector_host)
        servers = {" ".join(line.split()[:9]) for line in config.under(f"{SAMPLING} family inet output flow-server")}
        deletes = [f"delete {server}" for server in sorted(servers) if server != ours]
        other_format = [fmt for version, fmt in FORMATS.items() if version != self.spec.netflow_version]
        for fmt in other_format:
            if config.under(f"services flow-monitoring {fmt} template {TEMPLATE}"):
                deletes.append(f"delete services flow-monitoring {fmt} template {TEMPLATE}")
        return deletes

    def removal(self, config: SetConfig) -> list[str]:
        deletes = []
        for line in config.lines:
            match = re.fullmatch(r"set (interfaces \S+ unit \d+ family inet sampling input)", line)
            if match:
                deletes.append(f"delete {match.group(1)}")
        for line in config.lines:
            match = re.fullmatch(rf"set (chassis fpc \d+ sampling-instance {INSTANCE})", line)
            if match:
                deletes.append(f"delete {match.group(1)}")
        if config.under(SAMPLING):
            deletes.append(f"delete {SAMPLING}")
        for fmt in FORMATS.values():
            if config.under(f"services flow-monitoring {fmt} template {TEMPLATE}"):
                deletes.append(f"delete services flow-monitoring {fmt} template {TEMPLATE}")
        return deletes

    def _export_of(self, config: SetConfig) -> ExportConfig:
        destinations = []
        for line in config.under(f"{SAMPLING} family inet output flow-server"):
            words = line.split()
            if len(words) == 11 and words[9] == "port":
                fmt = next((f for f in config.under(f"{SAMPLING} family inet output flow-server {words[8]}")
                            if f.split()[9] in FORMATS.values()), "")
                version = {v: k for k, v in FORMATS.items()}.get(fmt.split()[9] if fmt else "", "")
                destinations.append((words[8], int(words[10]), version))
        interfaces = []
        for line in config.lines:
            match = re.fullmatch(r"set interfaces (\S+) unit (\d+) family inet sampling input", line)
            if match:
                interfaces.append(match.group(1) if match.group(2) == "0" else f"{match.group(1)}.{match.group(2)}")
        timeouts = {}
        for fmt in FORMATS.values():
            for line in config.under(f"services flow-monitoring {fmt} template {TEMPLATE}"):
                words = line.split()
                if words[-2] in ("flow-active-timeout", "flow-inactive-timeout"):
                    timeouts[words[-2]] = int(words[-1])
        bound = any(re.fullmatch(rf"set chassis fpc \d+ sampling-instance {INSTANCE}", line) for line in config.lines)
        interfaces += [f"{name}" for name in self.spec.interfaces
                       if name.endswith(".0") and name[:-2] in interfaces]
        return ExportConfig(enabled=bool(destinations and interfaces and bound), destinations=destinations,
                            interfaces=tuple(interfaces), active_timeout_s=timeouts.get("flow-active-timeout"),
                            inactive_timeout_s=timeouts.get("flow-inactive-timeout"))

    # -- clock ----------------------------------------------------------------------------
    ntp_command = "show ntp status"
    time_command = "show system uptime"

    @staticmethod
    def ntp_state(text: str) -> tuple[bool, bool, str]:
        if re.search(r"ntpd? (subsystem )?is not running|not configured", text):
            return False, False, "NTP is not running"
        synced = "sync_ntp" in text
        stratum = re.search(r"stratum=(\d+)", text)
        return True, synced, ("synchronised by NTP" if synced else "NTP is not synchronised") + (
            f", stratum {stratum.group(1)}" if stratum else "")

    @staticmethod
    def router_time(text: str) -> datetime | None:
        return parse_current_time(text)


def parse_current_time(text: str) -> datetime | None:
    """UTC from ``Current time: 2026-11-22 10:15:30 UTC`` (None for a zone other than UTC)."""
    match = re.search(r"Current time: (\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}) (\S+)", text)
    if not match or match.group(2) not in ("UTC", "GMT"):
        return None
    return datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)
