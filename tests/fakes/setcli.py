"""SSH servers (paramiko) that behave like the Juniper Junos and VyOS/EdgeOS CLIs for what
ispflow sends: configuration as ``set``/``delete`` lines into a candidate that ``commit`` makes
running.

* ``junos``: ``netops@mx1> `` and, in configuration mode, ``[edit]`` above ``netops@mx1# ``;
  the ``set cli ...`` lines netmiko sends at login; ``show version``, ``show configuration |
  display set``, ``show ntp status``, ``show system uptime``; ``configure``, ``set``,
  ``delete``, ``commit`` (which checks the inline J-Flow configuration hangs together, as the
  real commit check does), ``rollback 0`` and ``exit configuration-mode``.
* ``vyos``: ``vyos@vyos:~$ `` and ``[edit]`` above ``vyos@vyos# ``; ``show version``,
  ``show configuration commands`` (values in single quotes), ``show ntp`` (chrony's tracking
  report), ``show date``; ``configure``, ``set``, ``delete``, ``commit``, ``save``, ``discard``,
  ``exit`` / ``exit discard``.

Unknown commands and values are refused with each CLI's own messages.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from .cisco import FakeCisco, Invalid, _Shell

IPV4 = r"\d{1,3}(?:\.\d{1,3}){3}"
NAME = r"[A-Za-z0-9][\w-]*"
JUNOS_SET = [
    rf"services flow-monitoring (version9|version-ipfix) template {NAME} ipv4-template",
    rf"services flow-monitoring (version9|version-ipfix) template {NAME} flow-(in)?active-timeout (\d+)",
    rf"forwarding-options sampling instance {NAME} input rate \d+",
    rf"forwarding-options sampling instance {NAME} family inet output flow-server {IPV4} port (\d+)",
    rf"forwarding-options sampling instance {NAME} family inet output flow-server {IPV4} "
    rf"(version9|version-ipfix) template {NAME}",
    rf"forwarding-options sampling instance {NAME} family inet output inline-jflow source-address {IPV4}",
    rf"chassis fpc \d+ sampling-instance {NAME}",
    r"interfaces [a-z]+-\d+/\d+/\d+ unit \d+ family inet sampling (input|output)",
    rf"system ntp server {IPV4}",
]
VYOS_SET = [
    r"system flow-accounting interface (\S+)",
    r"system flow-accounting netflow version (5|9|10)",
    rf"system flow-accounting netflow server {IPV4} port (\d+)",
    r"system flow-accounting netflow timeout (max-active-life|flow-generic|expiry-interval|tcp-fin|udp) (\d+)",
    rf"system flow-accounting netflow source-address {IPV4}",
    rf"system ntp server {IPV4}",
]
SHOW_VERSION = {
    "junos": "Hostname: mx1\nModel: mx204\nJunos: 21.4R3-S3.4\nJUNOS OS Kernel 64-bit  [20230210.0d2c1f5_builder_stable_12]\n"
             "JUNOS OS runtime [20230210.0d2c1f5_builder_stable_12]",
    "vyos": "Version:          VyOS 1.4.0\nRelease train:    sagitta\n\nBuilt by:         autobuild@vyos.net\n"
            "Architecture:     x86_64\nBoot via:         installed image\nHardware vendor:  QEMU",
}


class FakeSetCLI(FakeCisco):
    """The SSH side is the Cisco fake's; the CLI behind it is ``_SetShell``."""

    def __init__(self, platform: str = "junos", username: str = "netops", password: str = "secret",
                 ntp: str = "synchronized", clock_offset_s: float = 0.0, refuse_commit: str | None = None):
        super().__init__("ios", username=username, password=password, ntp=ntp, clock_offset_s=clock_offset_s)
        assert platform in ("junos", "vyos")
        self.platform = platform
        self.hostname = "mx1" if platform == "junos" else "vyos"
        self.refuse_commit = refuse_commit  # a commit error to answer with, once
        self.interfaces = ("ge-0/0/0", "ge-0/0/1", "xe-1/0/0") if platform == "junos" else ("eth0", "eth1")
        self.running: list[str] = [] if ntp == "disabled" else ["set system ntp server 192.0.2.123"]
        self.commits = 0

    def shell(self, channel) -> "_SetShell":
        return _SetShell(self, channel)

    def configuration(self) -> str:
        if self.platform == "junos":
            return "\n".join(self.running)
        return "\n".join(_vyos_quoted(line) for line in self.running)

    def now(self) -> datetime:
        return datetime.now(timezone.utc) + self.clock_offset


def _vyos_quoted(line: str) -> str:
    *path, value = line.split()
    return " ".join(path) + f" '{value}'"


class _SetShell(_Shell):
    def __init__(self, fake: FakeSetCLI, channel):
        super().__init__(fake, channel)
        self.privileged = True
        self.candidate: list[str] | None = None  # in configuration mode
        self.confirming_exit = False

    def prompt(self) -> str:
        fake = self.fake
        if self.confirming_exit:
            return "Exit with uncommitted changes? [yes,no] (yes) "
        if fake.platform == "junos":
            return f"\n[edit]\n{fake.username}@{fake.hostname}# " if self.candidate is not None \
                else f"{fake.username}@{fake.hostname}> "
        return f"\n[edit]\n{fake.username}@{fake.hostname}# " if self.candidate is not None \
            else f"{fake.username}@{fake.hostname}:~$ "

    def invalid(self, line: str, kind: str) -> str:
        if self.fake.platform == "junos":
            position = len(self.prompt().splitlines()[-1]) + len(line) - len(line.lstrip())
            return " " * position + "^\n" + ("unknown command." if self.candidate is None else "syntax error.")
        if self.candidate is None:
            return "\n  Invalid command: [" + line.strip() + "]\n"
        return f"\n  Configuration path: [{line.strip()[4:]}] is not valid\n  Set failed\n"

    def execute(self, line: str) -> str:
        if self.confirming_exit:
            self.confirming_exit = False
            if line in ("", "yes"):
                self.candidate = None
                return "Exiting configuration mode"
            return ""
        if not line:
            return ""
        if self.candidate is None:
            return self.operational(line)
        return self.configure(line)

    # -- operational mode ------------------------------------------------------------------
    def operational(self, line: str) -> str:
        fake = self.fake
        if line in ("exit", "quit", "logout"):
            raise EOFError
        if fake.platform == "junos":
            answers = {"set cli screen-width 511": "Screen width set to 511",
                       "set cli complete-on-space off": "Disabling complete-on-space",
                       "set cli screen-length 0": "Screen length set to 0"}
            if line in answers:
                return answers[line]
            if line == "show version":
                return SHOW_VERSION["junos"]
            if line == "show configuration | display set":
                return fake.configuration()
            if line == "show ntp status":
                return self.junos_ntp()
            if line == "show system uptime":
                source = "NTP CLOCK" if fake.ntp == "synchronized" else "LOCAL CLOCK"
                return (f"Current time: {fake.now():%Y-%m-%d %H:%M:%S} UTC\nTime Source:  {source}\n"
                        "System booted: 2026-10-01 08:00:00 UTC (8w4d 14:30 ago)")
            if line == "configure":
                self.candidate = list(fake.running)
                return "Entering configuration mode"
            raise Invalid("invalid")
        if re.fullmatch(r"set terminal (width \d+|length \d+)", line):
            return ""
        if line == "show version":
            return SHOW_VERSION["vyos"]
        if line == "show configuration commands":
            return fake.configuration()
        if line == "show ntp":
            return self.vyos_ntp()
        if line == "show date":
            return fake.now().strftime("%a %b %d %H:%M:%S UTC %Y")
        if line == "configure":
            self.candidate = list(fake.running)
            return ""
        raise Invalid("invalid")

    def junos_ntp(self) -> str:
        ntp = self.fake.ntp
        if ntp == "disabled":
            return "ntpd is not running"
        if ntp == "synchronized":
            return ('status=0644 leap_none, sync_ntp, 15 events, clock_sync,\nversion="ntpd 4.2.8p15-a", '
                    'processor="amd64",\nsystem="FreeBSD", leap=00, stratum=3, precision=-23,\n'
                    "rootdelay=1.234, rootdisp=20.112, refid=192.0.2.123")
        return ('status=c011 leap_alarm, sync_unspec, 1 event, freq_not_set,\nversion="ntpd 4.2.8p15-a", '
                'processor="amd64",\nsystem="FreeBSD", leap=11, stratum=16, precision=-23')

    def vyos_ntp(self) -> str:
        ntp = self.fake.ntp
        if ntp == "disabled":
            return "NTP service is not configured"
        if ntp == "synchronized":
            return ("Reference ID    : C000027B (192.0.2.123)\nStratum         : 3\n"
                    "System time     : 0.000012 seconds fast of NTP time\nLeap status     : Normal")
        return ("Reference ID    : 00000000 ()\nStratum         : 0\n"
                "System time     : 0.000000 seconds slow of NTP time\nLeap status     : Not synchronised")

    # -- configuration mode ----------------------------------------------------------------
    def configure(self, line: str) -> str:
        fake = self.fake
        junos = fake.platform == "junos"
        if line.startswith("set "):
            path = " ".join(w.strip("'") for w in line[4:].split())
            if not any(re.fullmatch(p, path) for p in (JUNOS_SET if junos else VYOS_SET)):
                raise Invalid("invalid")
            if not junos and path.startswith("system flow-accounting interface ") \
                    and path.split()[-1] not in fake.interfaces:
                return f"\n  Configuration path: [{path}] is not valid\n  Set failed\n"
            self._set(path, junos)
            return ""
        if line.startswith("delete "):
            path = " ".join(w.strip("'") for w in line[7:].split())
            kept = [c for c in self.candidate if c != f"set {path}" and not c.startswith(f"set {path} ")]
            if len(kept) == len(self.candidate):
                return "warning: statement not found" if junos else \
                    "\n  Nothing to delete (the specified node does not exist)\n"
            self.candidate = kept
            return ""
        if line == "commit":
            return self.commit()
        if junos and line == "rollback 0":
            self.candidate = list(fake.running)
            return "load complete"
        if junos and line == "exit configuration-mode":
            if self.candidate != fake.running:
                self.confirming_exit = True
                return "The configuration has been changed but not committed"
            self.candidate = None
            return "Exiting configuration mode"
        if not junos and line == "discard":
            self.candidate = list(fake.running)
            return "  Changes have been discarded"
        if not junos and line == "save":
            fake.saved += 1
            return "Saving configuration to '/config/config.boot'...\nDone"
        if not junos and line in ("exit", "exit discard"):
            if line == "exit" and self.candidate != fake.running:
                return "Cannot exit: configuration modified.\nUse 'exit discard' to discard the changes and exit."
            self.candidate = None
            return "exit"
        raise Invalid("invalid")

    def _set(self, path: str, junos: bool) -> None:
        """Single-valued statements replace their previous value, as both CLIs do."""
        single = [r"(.* flow-(?:in)?active-timeout) \d+", r"(.* input rate) \d+", r"(.* flow-server \S+ port) \d+",
                  r"(.* inline-jflow source-address) \S+", r"(system flow-accounting netflow version) \S+",
                  r"(system flow-accounting netflow timeout \S+) \d+", r"(.* netflow server \S+ port) \d+"]
        for pattern in single:
            match = re.fullmatch(pattern, path)
            if match:
                self.candidate = [c for c in self.candidate if not c.startswith(f"set {match.group(1)} ")]
        if f"set {path}" not in self.candidate:
            self.candidate.append(f"set {path}")

    def commit(self) -> str:
        fake = self.fake
        problem = fake.refuse_commit or self.check(self.candidate)
        fake.refuse_commit = None
        if problem:
            if fake.platform == "junos":
                return f"error: {problem}\nerror: configuration check-out failed"
            return f"\n[ system flow-accounting ]\n{problem}\n\n[[system flow-accounting]] failed\nCommit failed"
        fake.running = list(self.candidate)
        fake.commits += 1
        return "commit complete" if fake.platform == "junos" else ""

    def check(self, lines: list[str]) -> str | None:
        text = "\n".join(lines)
        if self.fake.platform == "junos":
            for match in re.finditer(r"flow-server (\S+) (version9|version-ipfix) template (\S+)", text):
                if f"services flow-monitoring {match.group(2)} template {match.group(3)} " not in text:
                    return f"template {match.group(3)} is not defined under {match.group(2)}"
            if "flow-server" in text and "inline-jflow source-address" not in text:
                return "inline-jflow source-address is required"
            return None
        if "netflow server" in text and "flow-accounting interface" not in text:
            return "Flow accounting is not configured on any interface"
        return None
