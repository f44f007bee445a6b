"""A RouterOS API server on 127.0.0.1 that speaks the real wire protocol.

Words are length-prefixed (1 to 5 bytes, as in MikroTik's API documentation); a sentence is a
run of words ended by an empty word. Every reply sentence (``!re``, ``!done``, ``!trap``,
``!fatal``) carries the command's ``.tag``; a ``!trap`` is followed by ``!done``. Only
``/login`` is accepted before logging in. The server keeps the state of the menus ispflow
uses (``/ip/traffic-flow``, its ``target`` list, ``/system/resource``, ``/system/ntp/client``
and ``/system/clock``) and answers in the dialect of the RouterOS version it pretends to run:

* targets as ``address=IP:PORT`` and versions 1/5/9 before 6.43, ``dst-address`` + ``port``
  and ``ipfix`` from 6.43 on (the boundary ispflow's driver assumes);
* v6's SNTP client (``last-update-from`` ...) vs v7's NTP client (``status``);
* ``/system/clock`` dates as ``nov/22/2026`` before 7.10 and ``2026-11-22`` from 7.10.
"""
from __future__ import annotations

import socket
import ssl
from datetime import datetime, timedelta, timezone

from .listener import Listener

GMT_OFFSET = timedelta(hours=1)  # the fake router's clock runs in +01:00
MONTHS = "jan feb mar apr may jun jul aug sep oct nov dec".split()


def encode_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    if n < 0x4000:
        return (n | 0x8000).to_bytes(2, "big")
    if n < 0x200000:
        return (n | 0xC00000).to_bytes(3, "big")
    if n < 0x10000000:
        return (n | 0xE0000000).to_bytes(4, "big")
    return b"\xf0" + n.to_bytes(4, "big")


def version_tuple(version: str) -> tuple[int, ...]:
    digits = version.split()[0].split(".")
    return tuple(int("".join(c for c in d if c.isdigit()) or 0) for d in digits)


class Trap(Exception):
    """A command error: answered with ``!trap =message=...`` then ``!done``."""


class FakeRouterOS(Listener):
    def __init__(self, version: str = "7.12.1 (stable)", username: str = "admin", password: str = "secret",
                 ntp: str = "synchronized", clock_offset_s: float = 0.0, tls: bool = False, identity: str = "router",
                 interfaces: tuple[str, ...] = ("ether1", "ether2", "bridge"), hang_after: int | None = None):
        super().__init__()
        self.version = version
        self.v = version_tuple(version)
        self.username, self.password = username, password
        self.ntp = ntp  # synchronized | unsynchronized | disabled
        self.clock_offset = timedelta(seconds=clock_offset_s)
        self.tls = tls
        self.identity = identity  # whose certificate API-SSL presents; another identity is an impostor
        self.known_interfaces = interfaces
        self.hang_after = hang_after  # stop answering after this many commands (login counts)
        self.commands: list[tuple[str, dict]] = []  # every command received, for assertions
        self.traffic_flow = {
            "enabled": "no", "interfaces": "all", "cache-entries": "4k",
            "active-flow-timeout": "30m", "inactive-flow-timeout": "15s",
        }
        self.targets: list[dict] = []
        self._next_id = 1

    @property
    def key_text(self) -> str:
        """The API-SSL certificate as ispflow pins it."""
        return certificate_key_text(self.identity)

    @property
    def new_targets(self) -> bool:
        return self.v >= (6, 43)

    # -- server ------------------------------------------------------------------------------
    def start(self) -> "FakeRouterOS":
        self._context = _tls_context(self.identity) if self.tls else None
        return super().start()

    def _serve(self, conn: socket.socket):
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.settimeout(0.2)
        if self._context is not None:
            try:
                conn.settimeout(5)
                conn = self._context.wrap_socket(conn, server_side=True)
                conn.settimeout(0.2)
            except (ssl.SSLError, OSError):
                conn.close()
                return
        session = _Session(self, conn)
        try:
            session.run()
        finally:
            conn.close()

    # -- the router's menus --------------------------------------------------------------------
    def execute(self, command: str, attrs: dict, queries: list, logged_in: bool) -> tuple[list[dict], dict]:
        """Run one command; returns (rows for ``!re``, attributes of ``!done``)."""
        path, _, verb = command.rpartition("/")
        if path == "" and verb == "login":
            return self._login(attrs)
        if not logged_in:
            raise PermissionError("not logged in")
        handler = {
            "/ip/traffic-flow": self._traffic_flow,
            "/ip/traffic-flow/target": self._target,
            "/system/resource": self._resource,
            "/system/ntp/client": self._ntp_client,
            "/system/clock": self._clock,
        }.get(path)
        if handler is None:
            raise Trap("no such command prefix")
        return handler(verb, attrs, queries)

    def _login(self, attrs):
        if attrs.get("name") == self.username and attrs.get("password") == self.password:
            return [], {}
        raise Trap("invalid user name or password (6)")

    def _traffic_flow(self, verb, attrs, queries):
        if verb == "print":
            return [dict(self.traffic_flow)], {}
        if verb != "set":
            raise Trap("no such command")
        allowed = {"enabled", "interfaces", "cache-entries", "active-flow-timeout", "inactive-flow-timeout"}
        for key, value in attrs.items():
            if key not in allowed:
                raise Trap(f"unknown parameter {key}")
            if key == "enabled" and value not in ("yes", "no", "true", "false"):
                raise Trap("value of enabled must be yes or no")
            if key == "interfaces" and value != "all":
                for name in value.split(","):
                    if name not in self.known_interfaces:
                        raise Trap("input does not match any value of interface")
        for key, value in attrs.items():
            self.traffic_flow[key] = {"true": "yes", "false": "no"}.get(value, value)
        return [], {}

    def _target_fields(self):
        if self.new_targets:
            return {"src-address", "dst-address", "port", "version", "v9-template-refresh",
                    "v9-template-timeout", "disabled"}
        return {"address", "version", "v9-template-refresh", "v9-template-timeout", "disabled"}

    def _check_target(self, attrs):
        for key, value in attrs.items():
            if key not in self._target_fields():
                raise Trap(f"unknown parameter {key}")
            if key == "version":
                versions = ("1", "5", "9", "ipfix") if self.new_targets else ("1", "5", "9")
                if value not in versions:
                    raise Trap("input does not match any value of version")
            if key == "port" and not (value.isdigit() and 0 < int(value) < 65536):
                raise Trap("invalid value for argument port")
            if key == "address" and ":" not in value:
                raise Trap("invalid value for argument address")

    def _target(self, verb, attrs, queries):
        if verb == "print":
            return [dict(row) for row in self.targets if _matches(row, queries)], {}
        if verb == "add":
            self._check_target(attrs)
            row = {".id": f"*{self._next_id:X}", "disabled": "no", "version": "9",
                   "v9-template-refresh": "20", "v9-template-timeout": "30m"}
            if self.new_targets:
                row.update({"src-address": "0.0.0.0", "port": "2055"})
            row.update(attrs)
            if self.new_targets and "dst-address" not in attrs:
                raise Trap("failure: dst-address not specified")
            self._next_id += 1
            self.targets.append(row)
            return [], {"ret": row[".id"]}
        ids = (attrs.pop(".id", None) or attrs.pop("numbers", "") or "").split(",")
        rows = [row for row in self.targets if row[".id"] in ids]
        if not ids or len(rows) != len(ids):
            raise Trap("no such item")
        if verb == "set":
            self._check_target(attrs)
            for row in rows:
                row.update(attrs)
            return [], {}
        if verb == "remove":
            self.targets = [row for row in self.targets if row not in rows]
            return [], {}
        raise Trap("no such command")

    def _resource(self, verb, attrs, queries):
        if verb != "print":
            raise Trap("no such command")
        return [{"uptime": "3d4h5m6s", "version": self.version, "board-name": "CCR2004-1G-12S+2XS",
                 "architecture-name": "arm64", "cpu-load": "3"}], {}

    def _ntp_client(self, verb, attrs, queries):
        if verb != "print":
            raise Trap("no such command")
        enabled = "no" if self.ntp == "disabled" else "yes"
        if self.v >= (7,):
            status = {"synchronized": "synchronized", "unsynchronized": "waiting", "disabled": "stopped"}[self.ntp]
            row = {"enabled": enabled, "mode": "unicast", "servers": "192.0.2.123", "vrf": "main",
                   "freq-drift": "0.42 PPM", "status": status}
            if self.ntp == "synchronized":
                row.update({"synced-server": "192.0.2.123", "synced-stratum": "2", "system-offset": "-0.213 ms"})
            return [row], {}
        row = {"enabled": enabled, "mode": "unicast", "primary-ntp": "192.0.2.123",
               "secondary-ntp": "0.0.0.0", "server-dns-names": "", "poll-interval": "15m"}
        if self.ntp == "synchronized":
            row.update({"active-server": "192.0.2.123", "last-update-from": "192.0.2.123",
                        "last-update-before": "4m12s", "last-adjustment": "1ms234us"})
        return [row], {}

    def _clock(self, verb, attrs, queries):
        if verb != "print":
            raise Trap("no such command")
        local = datetime.now(timezone.utc) + self.clock_offset + GMT_OFFSET
        if self.v >= (7, 10):
            date = local.strftime("%Y-%m-%d")
        else:
            date = f"{MONTHS[local.month - 1]}/{local.day:02d}/{local.year}"
        return [{"time": local.strftime("%H:%M:%S"), "date": date, "time-zone-autodetect": "no",
                 "time-zone-name": "Europe/Prague", "gmt-offset": "+01:00", "dst-active": "no"}], {}


def _matches(row: dict, queries: list) -> bool:
    """RouterOS query words: ``?name=value``, ``?name`` (has), ``?-name`` (has not); implicit AND."""
    for word in queries:
        if word.startswith("#"):
            continue  # operators over a stack of results; ispflow sends none
        if word.startswith("-"):
            if word[1:] in row:
                return False
        elif "=" in word:
            key, value = word.split("=", 1)
            if row.get(key) != value:
                return False
        elif word not in row:
            return False
    return True


class _Session:
    def __init__(self, server: FakeRouterOS, conn):
        self.server, self.conn = server, conn
        self.buffer = b""
        self.logged_in = False

    def run(self):
        while not self.server._closing.is_set():
            try:
                sentence = self.read_sentence()
            except (ConnectionError, OSError):
                return
            if sentence is None:
                return
            if not sentence:
                continue
            if self.server.hang_after is not None and len(self.server.commands) >= self.server.hang_after:
                self.server.commands.append((sentence[0], {}))
                continue  # stops answering, keeps the connection open
            if not self.answer(sentence):
                return

    def answer(self, sentence: list[str]) -> bool:
        command, attrs, queries, tag = sentence[0], {}, [], None
        for word in sentence[1:]:
            if word.startswith("=") and len(word) > 1:
                key, _, value = word[1:].partition("=")
                attrs[key] = value
            elif word.startswith("?"):
                queries.append(word[1:])
            elif word.startswith(".tag="):
                tag = word[5:]
            else:
                self.send("!fatal", {}, tag, bare=f"unknown word {word!r}")
                return False
        proplist = attrs.pop(".proplist", None)
        attrs.pop("detail", None)
        self.server.commands.append((command, dict(attrs)))
        try:
            rows, done = self.server.execute(command, attrs, queries, self.logged_in)
        except PermissionError as exc:
            self.send("!fatal", {}, tag, bare=str(exc))
            return False
        except Trap as exc:
            self.conn.sendall(self.encode("!trap", {"message": str(exc)}, tag) + self.encode("!done", {}, tag))
            return True
        if command == "/login":
            self.logged_in = True
        replies = []
        for row in rows:
            if proplist is not None:
                wanted = proplist.split(",")
                row = {k: v for k, v in row.items() if k in wanted}
            replies.append(("!re", row))
        replies.append(("!done", done))
        self.conn.sendall(b"".join(self.encode(reply, attrs, tag) for reply, attrs in replies))
        return True

    def send(self, reply: str, attrs: dict, tag, bare: str | None = None):
        self.conn.sendall(self.encode(reply, attrs, tag, bare))

    @staticmethod
    def encode(reply: str, attrs: dict, tag, bare: str | None = None) -> bytes:
        words = [reply] + ([bare] if bare else []) + [f"={k}={v}" for k, v in attrs.items()]
        if tag is not None:
            words.append(f".tag={tag}")
        return b"".join(encode_length(len(w.encode())) + w.encode() for w in words) + b"\x00"

    def read_sentence(self) -> list[str] | None:
        words = []
        while True:
            word = self.read_word()
            if word is None:
                return None
            if word == b"":
                return [w.decode() for w in words]
            words.append(word)

    def read_word(self) -> bytes | None:
        first = self.read(1)
        if first is None:
            return None
        b = first[0]
        if b < 0x80:
            length = b
        elif b < 0xC0:
            length = ((b & 0x3F) << 8) | self.read(1)[0]
        elif b < 0xE0:
            length = int.from_bytes(bytes([b & 0x1F]) + self.read(2), "big")
        elif b < 0xF0:
            length = int.from_bytes(bytes([b & 0x0F]) + self.read(3), "big")
        else:
            length = int.from_bytes(self.read(4), "big")
        return self.read(length) if length else b""

    def read(self, n: int) -> bytes | None:
        while len(self.buffer) < n:
            if self.server._closing.is_set():
                return None
            try:
                chunk = self.conn.recv(4096)
            except (socket.timeout, ssl.SSLWantReadError):
                continue
            if hasattr(socket, "TCP_QUICKACK"):
                # routeros-api writes each word separately; acknowledging at once spares it
                # Nagle's wait for our delayed ACK on every command.
                self.conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
            if not chunk:
                return None
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data


_TLS_FILES: dict[str, tuple[str, str]] = {}


def certificate_key_text(identity: str = "router") -> str:
    """The certificate of ``identity`` as ispflow pins it."""
    import hashlib

    _tls_context(identity)
    with open(_TLS_FILES[identity][0]) as f:
        pem = f.read()
    return "tls-sha256 " + hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


def _tls_context(identity: str = "router") -> ssl.SSLContext:
    """A server context with a self-signed certificate, as RouterOS's API-SSL usually has."""
    if identity not in _TLS_FILES:
        import tempfile

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-routeros")])
        now = datetime.now(timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
                .not_valid_after(now + timedelta(days=30)).sign(key, hashes.SHA256()))
        folder = tempfile.mkdtemp(prefix="fake-routeros-")
        cert_path, key_path = f"{folder}/cert.pem", f"{folder}/key.pem"
        with open(cert_path, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(key_path, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        _TLS_FILES[identity] = (cert_path, key_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*_TLS_FILES[identity])
    return context
