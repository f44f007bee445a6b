"""The SSH session every netmiko-driven router shares: log in (with the host key checked
against the pinned one before the password is sent), run ``show`` commands, send
configuration lines and tell a refused line by the vendor's ``error_pattern``, and translate
netmiko's and paramiko's errors into one sentence for people.

What differs per family is the transaction on top: Cisco (``cisco.py``) sends steps line by
line and undoes them on a refusal; Junos and VyOS (``candidate_config.py``) fill a candidate
and commit it.
"""
from __future__ import annotations

import abc
import re

from .base import (
    AuthenticationFailed, CommandRefused, PinMismatch, RouterDriver, RouterError, Timeout, Unreachable,
    fingerprint, pin_mismatch,
)


class SSHDriver(RouterDriver):
    """A router configured over SSH with netmiko; subclasses name the device and its dialect."""

    default_port = 22
    client_library = "netmiko"
    device_type: str    # netmiko's name for the platform
    error_pattern: str  # how the CLI says a configuration line was refused

    @staticmethod
    @abc.abstractmethod
    def version_of(show_version: str) -> str:
        """The OS version from ``show version``'s output."""

    def __init__(self, spec, log=None):
        super().__init__(spec, log)
        self.conn = None
        self.os_version: str | None = spec.os_version

    # -- connection ----------------------------------------------------------------------
    def connect(self) -> None:
        from netmiko import ConnectHandler

        where = f"{self.spec.host}:{self.port}"
        self.log(f"Connecting over SSH to {where} as {self.device_type}.")
        timeout = self.spec.timeout
        pinned = self.spec.pinned_key
        known_hosts = self._known_hosts(pinned) if pinned else ""
        try:
            # With a pinned key paramiko checks the host key before it authenticates, so a
            # different server never sees the password.
            self.conn = ConnectHandler(
                device_type=self.device_type, host=self.spec.host, port=self.port, username=self.spec.username,
                password=self.spec.password, secret=self.spec.password, conn_timeout=timeout,
                auth_timeout=timeout, banner_timeout=timeout, read_timeout_override=timeout,
                fast_cli=True, allow_agent=False, use_keys=False,
                ssh_strict=bool(pinned), system_host_keys=False, alt_host_keys=bool(pinned), alt_key_file=known_hosts,
            )
            key = self.conn.remote_conn_pre.get_transport().get_remote_server_key()
            self.presented_key = f"{key.get_name()} {key.get_base64()}"
            if pinned and self.presented_key != pinned:
                raise pin_mismatch(where, pinned, self.presented_key)
            self.conn.enable()
            self.os_version = self.version_of(self._show("show version"))
        except RouterError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise self._translate(exc, "logging in") from None
        finally:
            if known_hosts:
                import os

                os.unlink(known_hosts)
        self.log(f"Logged in as {self.spec.username}; {self.label} {self.os_version}.")

    def _known_hosts(self, pinned: str) -> str:
        """A throw-away known_hosts file holding only the pinned key, for paramiko's check."""
        import os
        import tempfile

        name = self.spec.host if self.port == 22 else f"[{self.spec.host}]:{self.port}"
        handle, path = tempfile.mkstemp(prefix="ispflow-known-hosts-")
        with os.fdopen(handle, "w") as f:
            f.write(f"{name} {pinned}\n")
        return path

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.disconnect()
            except Exception:  # noqa: BLE001  (the session may be dead already)
                pass
        self.conn = None

    def _translate(self, exc: Exception, doing: str) -> RouterError:
        from netmiko.exceptions import (
            NetmikoAuthenticationException, NetmikoTimeoutException, ReadException, ReadTimeout,
        )

        where = f"{self.spec.host}:{self.port}"
        import paramiko

        wrapped = exc.__cause__ or exc.__context__
        for candidate in (exc, wrapped):
            if isinstance(candidate, paramiko.BadHostKeyException):
                got = candidate.key
                return pin_mismatch(where, self.spec.pinned_key or "", f"{got.get_name()} {got.get_base64()}")
        if self.spec.pinned_key and "known_hosts" in str(exc):
            return PinMismatch(f"The router at {where} presented a host key of another type than the pinned "
                               f"{fingerprint(self.spec.pinned_key)}; nothing was sent. An admin re-pins it on the "
                               "router page (or `ispflow routers repin`) if the router really changed.")
        if isinstance(exc, NetmikoAuthenticationException):
            return AuthenticationFailed(f"The router at {where} refused the username or password.")
        if isinstance(exc, (ReadTimeout, TimeoutError)) or "timed out" in str(exc).lower() \
                or "pattern not detected" in str(exc).lower():
            return Timeout(f"The router at {where} stopped answering while {doing} "
                           f"(no reply within {self.spec.timeout:g} s).")
        if isinstance(exc, NetmikoTimeoutException):
            return Unreachable(f"Cannot reach SSH at {where} (connection failed or timed out).")
        if isinstance(exc, ReadException):
            return Timeout(f"The router at {where} stopped answering while {doing}.")
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return Unreachable(f"The SSH session with {where} failed while {doing} ({first}).")

    def _show(self, command: str) -> str:
        try:
            # The prompt is known since login; finding it again costs up to 40 s on a hung router.
            return self.conn.send_command(command, read_timeout=self.spec.timeout, auto_find_prompt=False)
        except Exception as exc:  # noqa: BLE001
            raise self._translate(exc, f"running `{command}`") from None

    def test_connection(self) -> str:
        return self.os_version or ""

    def _send(self, lines: list[str]) -> None:
        """Send configuration lines; a refusal raises CommandRefused with ``index`` of the line."""
        from netmiko.exceptions import ConfigInvalidException

        for line in lines:
            self.log(f"> {line}")
        try:
            self.conn.send_config_set(lines, enter_config_mode=False, exit_config_mode=False,
                                      error_pattern=self.error_pattern, read_timeout=self.spec.timeout)
        except ConfigInvalidException as exc:
            match = re.search(r"at command: (.*), matched error: (.*)", str(exc), re.S)
            line, reason = (match.group(1), match.group(2).strip()) if match else (lines[0], "refused")
            refused = CommandRefused(f"The router refused `{line}` ({reason}).")
            refused.index = lines.index(line) if line in lines else 0
            raise refused from None
        except Exception as exc:  # noqa: BLE001
            raise self._translate(exc, f"sending `{lines[0]}`") from None

    def _enter_config(self) -> None:
        try:
            self.conn.config_mode()
        except Exception as exc:  # noqa: BLE001
            raise self._translate(exc, "entering configuration mode") from None

    def _leave_config(self) -> None:
        try:
            self.conn.exit_config_mode()
        except Exception as exc:  # noqa: BLE001
            raise self._translate(exc, "leaving configuration mode") from None
