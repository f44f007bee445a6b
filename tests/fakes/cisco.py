"""An SSH server (paramiko) that behaves like a Cisco CLI for the commands ispflow sends.

It echoes every line typed (netmiko waits for the echo), shows IOS prompts for each mode
(``Router>``, ``Router#``, ``Router(config)#``, ``(config-if)#``, ``(config-flow-exporter)#``
...), asks for the enable password, and keeps a running configuration that
``show running-config`` prints back. Each platform knows only its own NetFlow dialect:

* ``ios``: classic NetFlow (``ip flow-export ...``, ``ip flow-cache timeout ...``,
  ``ip flow ingress`` on interfaces);
* ``xe``: Flexible NetFlow (``flow record/exporter/monitor``, ``ip flow monitor NAME input``);
* ``nxos``: Flexible NetFlow after ``feature netflow``, NX-OS prompts and messages.

Anything else is answered with ``% Invalid input detected at '^' marker.`` (NX-OS:
``% Invalid command at '^' marker.``), as the real CLI does.
"""
from __future__ import annotations

import re
import socket
import threading
from datetime import datetime, timedelta, timezone

import paramiko

from .listener import Listener

_HOST_KEYS: dict[str, paramiko.PKey] = {}


def host_key(identity: str = "router") -> paramiko.PKey:
    """One stable key per identity for the whole test run; another identity is an impostor."""
    if identity not in _HOST_KEYS:
        _HOST_KEYS[identity] = paramiko.RSAKey.generate(2048)
    return _HOST_KEYS[identity]


SHOW_VERSION = {
    "ios": "Cisco IOS Software, C2900 Software (C2900-UNIVERSALK9-M), Version 15.7(3)M8, RELEASE SOFTWARE (fc2)\n"
           "ROM: System Bootstrap, Version 15.0(1r)M16, RELEASE SOFTWARE (fc1)\nRouter uptime is 3 weeks, 2 days",
    "xe": "Cisco IOS XE Software, Version 17.09.04a\nCisco IOS Software [Cupertino], Catalyst L3 Switch Software "
          "(CAT9K_IOSXE), Version 17.9.4a, RELEASE SOFTWARE (fc5)\nRouter uptime is 12 weeks",
    "nxos": "Cisco Nexus Operating System (NX-OS) Software\nSoftware\n  BIOS: version 05.47\n"
            "  NXOS: version 9.3(8)\n  NXOS image file is: bootflash:///nxos.9.3.8.bin",
}

SUBMODES = {
    "interface": "config-if",
    "flow exporter": "config-flow-exporter",
    "flow record": "config-flow-record",
    "flow monitor": "config-flow-monitor",
}


class FakeCisco(Listener):
    def __init__(self, platform: str = "ios", username: str = "netops", password: str = "secret",
                 enable_password: str | None = None, ntp: str = "synchronized", clock_offset_s: float = 0.0,
                 interfaces: tuple[str, ...] | None = None, hang_after: int | None = None,
                 timezone_config: tuple[str, int] | None = None, identity: str = "router"):
        super().__init__()
        self.identity = identity
        assert platform in ("ios", "xe", "nxos")
        self.platform = platform
        self.username, self.password = username, password
        self.enable_password = enable_password if enable_password is not None else password
        self.ntp = ntp
        self.clock_offset = timedelta(seconds=clock_offset_s)
        self.hostname = "switch" if platform == "nxos" else "Router"
        if interfaces is None:
            interfaces = ("Ethernet1/1", "Ethernet1/2") if platform == "nxos" else (
                "GigabitEthernet0/0", "GigabitEthernet0/1")
        self.hang_after = hang_after  # stop answering after this many lines typed
        self.lines_typed: list[str] = []
        self.passwords_received: list[str] = []  # every password offered at login, for assertions
        self.saved = 0  # how many times the configuration was saved
        # Running configuration: top-level lines with their (indented) children, in order.
        self.config: list[list] = [[f"hostname {self.hostname}", []]]
        if platform == "nxos":
            self.config.insert(0, ["version 9.3(8)", []])
        if timezone_config:
            self.config.append([f"clock timezone {timezone_config[0]} {timezone_config[1]} 0", []])
        for name in interfaces:
            self.config.append([f"interface {name}", ["no shutdown"]])
        if ntp != "disabled":
            self.config.append(["ntp server 192.0.2.123", []])

    # -- server ------------------------------------------------------------------------
    def start(self) -> "FakeCisco":
        host_key(self.identity)
        return super().start()

    @property
    def key_text(self) -> str:
        """The host key as ispflow pins it."""
        key = host_key(self.identity)
        return f"{key.get_name()} {key.get_base64()}"

    def _serve(self, conn):
        transport = paramiko.Transport(conn)
        transport.add_server_key(host_key(self.identity))
        server = _Auth(self)
        try:
            transport.start_server(server=server)
            channel = transport.accept(10)
            if channel is None:
                return
            server.shell_ready.wait(10)
            self.shell(channel).run()
        except (paramiko.SSHException, EOFError, OSError):
            pass
        finally:
            transport.close()

    def shell(self, channel) -> "_Shell":
        """The CLI one SSH session talks to (other vendors' fakes bring their own)."""
        return _Shell(self, channel)

    # -- running configuration -----------------------------------------------------------
    def block(self, line: str):
        for entry in self.config:
            if entry[0] == line:
                return entry
        return None

    def running_config(self) -> str:
        indent = "  " if self.platform == "nxos" else " "
        out = []
        if self.platform == "nxos":
            out += ["!Command: show running-config", "!Running configuration last done at: Sun Nov 22 10:00:00 2026", ""]
        else:
            out += ["Building configuration...", "", "Current configuration : 1024 bytes", "!"]
        for line, children in self.config:
            out.append(line)
            out += [indent + child for child in children]
            out.append("!")
        if self.platform != "nxos":
            out.append("end")
        return "\n".join(out)


class _Auth(paramiko.ServerInterface):
    def __init__(self, fake: FakeCisco):
        self.fake = fake
        self.shell_ready = threading.Event()

    def get_allowed_auths(self, username):
        return "password"

    def check_auth_password(self, username, password):
        self.fake.passwords_received.append(password)
        if username == self.fake.username and password == self.fake.password:
            return paramiko.AUTH_SUCCESSFUL
        return paramiko.AUTH_FAILED

    def check_channel_request(self, kind, chanid):
        return paramiko.OPEN_SUCCEEDED if kind == "session" else paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_pty_request(self, *args):
        return True

    def check_channel_shell_request(self, channel):
        self.shell_ready.set()
        return True


class Invalid(Exception):
    """The CLI does not know the command here (or a value is wrong)."""


class _Shell:
    def __init__(self, fake: FakeCisco, channel):
        self.fake, self.channel = fake, channel
        self.privileged = fake.platform == "nxos"
        self.mode = "exec"  # exec | config | a submode name
        self.context = None  # the config block a submode edits
        self.awaiting_enable_password = False

    # -- terminal ------------------------------------------------------------------------
    def prompt(self) -> str:
        name = self.fake.hostname
        if self.awaiting_enable_password:
            return "Password: "
        if self.mode == "exec":
            return name + ("#" if self.privileged else ">")
        return f"{name}({self.mode})#"

    def write(self, text: str):
        self.channel.sendall(text.replace("\n", "\r\n").encode())

    def run(self):
        self.write(f"\n{self.prompt()}")
        buffer = ""
        self.channel.settimeout(0.2)
        last = ""
        while not self.fake._closing.is_set() and not self.channel.closed:
            try:
                data = self.channel.recv(1024)
            except socket.timeout:
                continue
            if not data:
                return
            for char in data.decode("utf-8", "replace"):
                if char == "\n" and last == "\r":
                    last = char
                    continue
                last = char
                if char in "\r\n":
                    line, buffer = buffer, ""
                    if not self.handle_line(line):
                        return
                else:
                    buffer += char

    def handle_line(self, line: str) -> bool:
        fake = self.fake
        if fake.hang_after is not None and len(fake.lines_typed) >= fake.hang_after:
            fake.lines_typed.append(line)
            return True  # silent from now on, as a router whose CPU is pegged
        fake.lines_typed.append(line)
        if self.awaiting_enable_password:
            self.awaiting_enable_password = False
            self.write("\n")
            if line == fake.enable_password:
                self.privileged = True
            else:
                self.write("% Access denied\n\n")
            self.write(self.prompt())
            return True
        echo = line + "\n"
        try:
            output = self.execute(line.strip())
        except Invalid as exc:
            output = self.invalid(line, str(exc))
        except EOFError:
            self.write(echo)
            return False
        # One write per command: echo, output and the next prompt, as a router's TTY sends them.
        self.write(echo + (output.rstrip("\n") + "\n" if output else "") + self.prompt())
        return True

    def invalid(self, line: str, kind: str) -> str:
        position = len(self.prompt()) + max(len(line) - len(line.lstrip()), 0)
        if self.fake.platform == "nxos":
            return " " * position + "^\n% Invalid command at '^' marker."
        if kind == "incomplete":
            return "% Incomplete command."
        return " " * position + "^\n% Invalid input detected at '^' marker."

    # -- commands ------------------------------------------------------------------------
    def execute(self, line: str) -> str:
        if not line:
            return ""
        if self.mode == "exec":
            return self.exec_command(line)
        if line == "end":
            self.mode, self.context = "exec", None
            return ""
        if line == "exit":
            if self.mode == "config":
                self.mode = "exec"
            else:
                self.mode, self.context = "config", None
            return ""
        if self.mode == "config":
            return self.global_config(line)
        return self.sub_config(line)

    def exec_command(self, line: str) -> str:
        fake = self.fake
        if line == "enable":
            if not self.privileged:
                self.awaiting_enable_password = True
            return ""
        if line in ("exit", "logout", "quit"):
            raise EOFError
        if re.fullmatch(r"terminal (length 0|width \d+|no width)", line):
            return ""
        if line.startswith("show "):
            return self.show(line[5:].strip())
        if not self.privileged:
            raise Invalid("invalid")
        if line in ("configure terminal", "conf t", "config term"):
            self.mode = "config"
            if fake.platform == "nxos":
                return "Enter configuration commands, one per line. End with CNTL/Z."
            return "Enter configuration commands, one per line.  End with CNTL/Z."
        if fake.platform in ("ios", "xe") and line in ("write mem", "write memory", "wr"):
            fake.saved += 1
            return "Building configuration...\n[OK]"
        if line in ("copy running-config startup-config", "copy run start"):
            fake.saved += 1
            if fake.platform == "nxos":
                return "[########################################] 100%\nCopy complete, now saving to disk (please wait)...\nCopy complete."
            return "Destination filename [startup-config]? \nBuilding configuration...\n[OK]"
        raise Invalid("invalid")

    def show(self, what: str) -> str:
        fake = self.fake
        base, _, pipe = what.partition("|")
        base = base.strip()
        if base in ("running-config", "run"):
            text = fake.running_config()
        elif base == "version":
            text = SHOW_VERSION[fake.platform]
        elif base == "clock":
            text = self.show_clock()
        elif base == "ntp status":
            text = self.show_ntp_status()
        elif base == "ntp peer-status" and fake.platform == "nxos":
            text = self.show_ntp_peers()
        else:
            raise Invalid("invalid")
        pipe = pipe.strip()
        if pipe.startswith("include "):
            pattern = pipe[len("include "):]
            text = "\n".join(line for line in text.splitlines() if re.search(pattern, line))
        return text

    def timezone(self) -> tuple[str, int]:
        for line, _ in self.fake.config:
            match = re.fullmatch(r"clock timezone (\S+) (-?\d+) \d+", line)
            if match:
                return match.group(1), int(match.group(2))
        return "UTC", 0

    def show_clock(self) -> str:
        zone, hours = self.timezone()
        now = datetime.now(timezone.utc) + self.fake.clock_offset + timedelta(hours=hours)
        stamp = now.strftime("%H:%M:%S.") + f"{now.microsecond // 1000:03d} {zone} " + now.strftime("%a %b %d %Y")
        if self.fake.platform == "nxos":
            source = "NTP" if self.fake.ntp == "synchronized" else "Hardware Calendar"
            return f"{stamp}\nTime source is {source}"
        # '*' means the time is not authoritative, '.' authoritative but not synchronised.
        flag = {"synchronized": "", "unsynchronized": ".", "disabled": "*"}[self.fake.ntp]
        return flag + stamp

    def show_ntp_status(self) -> str:
        ntp = self.fake.ntp
        if self.fake.platform == "nxos":
            return "Distribution : Disabled\nLast operational state: No session"
        if ntp == "disabled":
            return "%NTP is not enabled."
        if ntp == "synchronized":
            return ("Clock is synchronized, stratum 3, reference is 192.0.2.123\n"
                    "nominal freq is 250.0000 Hz, actual freq is 250.0001 Hz, precision is 2**18\n"
                    "reference time is E9C1A2B3.1C2D3E4F (10:00:00.110 UTC Sun Nov 22 2026)\n"
                    "clock offset is -0.2130 msec, root delay is 1.20 msec")
        return ("Clock is unsynchronized, stratum 16, no reference clock\n"
                "nominal freq is 250.0000 Hz, actual freq is 250.0000 Hz, precision is 2**18")

    def show_ntp_peers(self) -> str:
        ntp = self.fake.ntp
        head = ("Total peers : {n}\n* - selected for sync, + -  peer mode(active),\n"
                "- - peer mode(passive), = - polled in client mode\n"
                "    remote                                 local                                   st   poll   reach delay   vrf\n"
                "-----------------------------------------------------------------------------------------------------------------------")
        if ntp == "disabled":
            return head.format(n=0)
        mark = "*" if ntp == "synchronized" else "="
        return head.format(n=1) + f"\n{mark}192.0.2.123                             0.0.0.0                                  2   64     377   0.00123 default"

    # -- configuration modes ---------------------------------------------------------------
    def global_config(self, line: str) -> str:
        fake, platform = self.fake, self.fake.platform
        negate = line.startswith("no ")
        body = line[3:].strip() if negate else line
        for prefix, mode in SUBMODES.items():
            if body.startswith(prefix + " "):
                return self.enter_or_delete(prefix, body, mode, negate)
        if platform == "ios":
            patterns = [
                r"ip flow-export destination \d+\.\d+\.\d+\.\d+ \d+",
                r"ip flow-export version (1|5|9)",
                r"ip flow-export source \S+",
                r"ip flow-cache timeout active ([1-9]|[1-5]\d|60)",
                r"ip flow-cache timeout inactive \d+",
            ]
        elif platform == "nxos":
            patterns = [r"feature netflow", r"ntp server \S+"]
        else:
            patterns = [r"ntp server \S+"]
        patterns.append(r"clock timezone \S+ -?\d+ \d+")
        if not any(re.fullmatch(p, body) for p in patterns):
            raise Invalid("invalid")
        if negate:
            fake.config = [e for e in fake.config if e[0] != body]
            return ""
        if body.startswith("ip flow-export destination"):
            count = sum(1 for e in fake.config if e[0].startswith("ip flow-export destination"))
            if count >= 2 and not fake.block(body):
                return "%Only two flow export destinations are allowed"
        else:
            # single-valued settings replace their previous value
            key = re.sub(r"\s\S+$", "", body)
            fake.config = [e for e in fake.config if re.sub(r"\s\S+$", "", e[0]) != key]
        if not fake.block(body):
            fake.config.append([body, []])
        return ""

    def enter_or_delete(self, prefix: str, body: str, mode: str, negate: bool) -> str:
        fake = self.fake
        if prefix.startswith("flow "):
            if fake.platform == "ios" or (fake.platform == "nxos" and not fake.block("feature netflow")):
                raise Invalid("invalid")
            if not re.fullmatch(r"flow (exporter|record|monitor) [\w-]+", body):
                raise Invalid("invalid")
        entry = fake.block(body)
        if prefix == "interface" and entry is None:
            raise Invalid("invalid")  # no such interface on this box
        if negate:
            if prefix == "interface":
                raise Invalid("invalid")
            if entry is None:
                return f"% Flow {body.split()[1]} {body.split()[2]} does not exist"
            if prefix == "flow exporter" or prefix == "flow record":
                name = body.split()[2]
                kind = body.split()[1]
                for other, children in fake.config:
                    if other.startswith("flow monitor") and f"{kind} {name}" in children:
                        return f"% {kind.capitalize()} {name} is in use by a monitor"
            fake.config.remove(entry)
            return ""
        if entry is None:
            entry = [body, []]
            fake.config.append(entry)
        self.mode, self.context = mode, entry
        return ""

    def sub_config(self, line: str) -> str:
        fake, platform = self.fake, self.fake.platform
        negate = line.startswith("no ")
        body = line[3:].strip() if negate else line
        children = self.context[1]
        if self.mode == "config-if":
            allowed = [r"description .+", r"shutdown", r"ip address .+"]
            if platform == "ios":
                allowed += [r"ip flow (ingress|egress)"]
            else:
                allowed += [r"ip flow monitor [\w-]+ (input|output)"]
        elif self.mode == "config-flow-exporter":
            allowed = [r"destination \d+\.\d+\.\d+\.\d+", r"transport udp \d+", r"source \S+", r"description .+"]
            if platform == "xe":
                allowed += [r"export-protocol (netflow-v5|netflow-v9|ipfix)"]
            else:
                allowed += [r"version 9"]
        elif self.mode == "config-flow-record":
            allowed = [r"match .+", r"collect .+", r"description .+"]
        else:  # flow monitor
            allowed = [r"exporter [\w-]+", r"record [\w-]+", r"description .+"]
            if platform == "xe":
                allowed += [r"cache timeout (active|inactive) \d+"]
        if not any(re.fullmatch(p, body) for p in allowed):
            raise Invalid("invalid")
        if body.startswith("source ") and not fake.block(f"interface {body.split(maxsplit=1)[1]}"):
            raise Invalid("invalid")  # the export's source must be an interface of this box
        if self.mode == "config-flow-monitor" and not negate:
            kind, name = body.split(maxsplit=1)
            if kind in ("exporter", "record") and not fake.block(f"flow {kind} {name}"):
                return f"% flow {kind} {name} does not exist"
        if self.mode == "config-if" and body.startswith("ip flow monitor") and not negate:
            if not fake.block(f"flow monitor {body.split()[3]}"):
                return f"% Flow Monitor: Flow Monitor '{body.split()[3]}' does not exist"
        if negate:
            if body in children:
                children.remove(body)
            return ""
        single = re.match(r"(destination|transport udp|source|export-protocol|version|record|description|"
                          r"cache timeout active|cache timeout inactive)\b", body)
        if single:
            children[:] = [c for c in children if not c.startswith(single.group(1) + " ")]
        if body not in children:
            children.append(body)
        return ""
