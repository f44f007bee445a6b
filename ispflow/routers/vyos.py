"""VyOS and Ubiquiti EdgeOS (EdgeRouter) flow-accounting over SSH: ``vyos`` in netmiko.

``system flow-accounting`` (pmacct underneath) exports NetFlow v5, v9 or IPFIX (``version 10``)
of the watched interfaces to the collector. The commit is saved (``save``): on VyOS a commit
alone is lost at the next reboot. ``flow-accounting`` is one node for the whole router, which
ispflow owns once it provisions it: removal deletes the node.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone

from .base import ACTIVE_TIMEOUT_S, INACTIVE_TIMEOUT_S, ExportConfig, register
from .candidate_config import CandidateConfigDriver, SetConfig

NODE = "system flow-accounting"
VERSIONS = {"5": "5", "9": "9", "ipfix": "10"}
PROMPT_END = r"[$#] ?$"
ERROR_PATTERN = r"(?m)(Set failed|Delete failed|is not valid|Invalid command|Nothing to delete)"


@register
class VyOSDriver(CandidateConfigDriver):
    vendor = "vyos"
    interface_example = "eth0,eth1"
    label = "VyOS / Ubiquiti EdgeOS (flow-accounting)"
    device_type = "vyos"
    error_pattern = ERROR_PATTERN
    show_config = "show configuration commands"
    discard = "discard"
    saves_after_commit = True

    def connect(self) -> None:
        super().connect()
        # netmiko's VyOS driver tells configuration mode from operational mode by waiting for
        # 2 s of silence after the prompt, at every check (entering, committing, leaving,
        # logging out). The prompt's last character says it at once: '#' configuring, '$' not.
        check = self.conn.check_config_mode
        self.conn.check_config_mode = lambda check_string="#", pattern="", force_regex=False: check(
            check_string=check_string, pattern=PROMPT_END)

    def _leave_config(self) -> None:
        try:  # netmiko's exit_config_mode waits for silence too
            self.conn.send_command("exit", expect_string=PROMPT_END, read_timeout=self.spec.timeout)
        except Exception as exc:  # noqa: BLE001
            raise self._translate(exc, "leaving configuration mode") from None

    @staticmethod
    def version_of(show_version: str) -> str:
        match = re.search(r"^Version:\s+(.+?)\s*$", show_version, re.M)
        return match.group(1) if match else ""

    def wanted(self) -> list[str]:
        lines = [f"set {NODE} interface {name}" for name in self.spec.interfaces]
        lines += [f"set {NODE} netflow version {VERSIONS[self.spec.netflow_version]}",
                  f"set {NODE} netflow server {self.spec.collector_host} port {self.spec.collector_port}",
                  f"set {NODE} netflow timeout max-active-life {ACTIVE_TIMEOUT_S}",
                  f"set {NODE} netflow timeout flow-generic {INACTIVE_TIMEOUT_S}"]
        return lines

    def stale(self, config: SetConfig) -> list[str]:
        servers = {line.split()[4] for line in config.under(f"{NODE} netflow server")}
        return [f"delete {NODE} netflow server {host}" for host in sorted(servers) if host != self.spec.collector_host]

    def removal(self, config: SetConfig) -> list[str]:
        return [f"delete {NODE}"] if config.under(NODE) else []

    def _export_of(self, config: SetConfig) -> ExportConfig:
        version = next((line.split()[-1] for line in config.under(f"{NODE} netflow version")), "")
        version = {v: k for k, v in VERSIONS.items()}.get(version, version)
        destinations = [(words[4], int(words[6]), version) for words in
                        (line.split() for line in config.under(f"{NODE} netflow server")) if len(words) == 7]
        interfaces = tuple(line.split()[-1] for line in config.under(f"{NODE} interface"))
        timeouts = {line.split()[-2]: int(line.split()[-1]) for line in config.under(f"{NODE} netflow timeout")}
        return ExportConfig(enabled=bool(destinations and interfaces), destinations=destinations,
                            interfaces=interfaces, active_timeout_s=timeouts.get("max-active-life"),
                            inactive_timeout_s=timeouts.get("flow-generic"))

    # -- clock ----------------------------------------------------------------------------
    ntp_command = "show ntp"
    time_command = "show date"

    @staticmethod
    def ntp_state(text: str) -> tuple[bool, bool, str]:
        if re.search(r"not configured|not running", text, re.I):
            return False, False, "NTP is not configured"
        leap = re.search(r"Leap status\s*:\s*(.+)", text)
        synced = bool(leap) and leap.group(1).strip() == "Normal"
        reference = re.search(r"Reference ID\s*:\s*\S+ \(([^)]+)\)", text)
        return True, synced, (f"synchronised to {reference.group(1)}" if synced and reference
                              else "synchronised" if synced else "NTP is not synchronised")

    @staticmethod
    def router_time(text: str) -> datetime | None:
        return parse_show_date(text)


def parse_show_date(text: str) -> datetime | None:
    """UTC from ``Sun Nov 22 10:15:30 UTC 2026`` (``date``'s format); None for another zone."""
    match = re.search(r"\w{3} (\w{3}) +(\d{1,2}) (\d{2}:\d{2}:\d{2}) (\S+) (\d{4})", text)
    if not match or match.group(4) not in ("UTC", "GMT"):
        return None
    return datetime.strptime(f"{match.group(5)} {match.group(1)} {match.group(2)} {match.group(3)}",
                             "%Y %b %d %H:%M:%S").replace(tzinfo=timezone.utc)
