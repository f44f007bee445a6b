"""Routers configured with ``set``/``delete`` lines into a candidate that takes effect on
``commit``: Juniper Junos (``junos.py``) and VyOS / Ubiquiti EdgeOS (``vyos.py``), over SSH with
netmiko.

The SSH session (login, ``show`` commands, error translation) is the one the Cisco drivers use
(``ssh_session.SSHDriver``); what differs is the transaction. Every line goes into the candidate
configuration; if the CLI refuses one, or the commit fails, the candidate is thrown away
(Junos ``rollback 0``, VyOS ``discard``) and the running configuration was never touched —
there is nothing to undo line by line. The configuration is read as ``set`` lines (Junos
``show configuration | display set``, VyOS ``show configuration commands``), so the plan is the
lines missing from it, and verification looks the wanted lines up in it.
"""
from __future__ import annotations

import abc
import re
from datetime import datetime, timezone

from .base import ApplyResult, ClockState, CommandRefused, ExportConfig, RouterError, Unsupported, Verification
from .ssh_session import SSHDriver


class SetConfig:
    """A configuration as ``set`` lines, values unquoted (VyOS prints ``'2055'``)."""

    def __init__(self, text: str):
        self.lines = [_unquoted(line.strip()) for line in text.splitlines() if line.strip().startswith("set ")]

    def has(self, line: str) -> bool:
        return line in self.lines

    def under(self, prefix: str) -> list[str]:
        """The lines below ``prefix`` (a path given without the leading ``set``)."""
        return [line[len("set "):] for line in self.lines if line.startswith(f"set {prefix} ")]


def _unquoted(line: str) -> str:
    return " ".join(word[1:-1] if len(word) >= 2 and word[0] == word[-1] == "'" else word for word in line.split())


class CandidateConfigDriver(SSHDriver):
    """A vendor whose CLI edits a candidate configuration and commits it."""

    show_config: str           # operational command printing the configuration as set lines
    discard: str               # configuration command throwing the candidate away
    saves_after_commit = False  # VyOS keeps a commit only until reboot unless saved

    def _check_spec(self) -> None:
        if not self.spec.interfaces:
            raise Unsupported(f"{self.label} needs the list of interfaces to watch.")
        if self.spec.netflow_version not in self.versions:
            raise Unsupported(f"{self.label} exports {' or '.join(self.versions)} here, "
                              f"not {self.spec.netflow_version}.")

    def set_config(self) -> SetConfig:
        return SetConfig(self._show(self.show_config))

    @abc.abstractmethod
    def wanted(self) -> list[str]:
        """The ``set`` lines of our export."""

    @abc.abstractmethod
    def stale(self, config: SetConfig) -> list[str]:
        """``delete`` lines for what of ours the wanted lines do not replace (an old collector)."""

    @abc.abstractmethod
    def removal(self, config: SetConfig) -> list[str]:
        """``delete`` lines taking our export off."""

    def _changes(self, config: SetConfig) -> list[str]:
        return self.stale(config) + [line for line in self.wanted() if not config.has(line)]

    # -- planning and applying ------------------------------------------------------------
    def plan(self, connected: bool = True) -> list[str]:
        self._check_spec()
        changes = self._changes(self.set_config() if connected else SetConfig(""))
        return changes + ["commit"] if changes else []

    def apply(self) -> ApplyResult:
        self._check_spec()
        return self._commit(self._changes(self.set_config()))

    def remove(self) -> ApplyResult:
        return self._commit(self.removal(self.set_config()))

    def _commit(self, lines: list[str]) -> ApplyResult:
        if not lines:
            return ApplyResult(unchanged=True)
        self._enter_config()
        try:
            self._send(lines)
            self.log("> commit")
            self._run_commit()
        except CommandRefused as exc:
            raise self._discarded(exc, lines) from None
        except RouterError as exc:
            exc.applied, exc.not_applied = [], lines + ["commit"]
            raise
        self._leave_config()
        return ApplyResult(applied=lines + ["commit"])

    def _run_commit(self) -> None:
        try:
            self.conn.commit(read_timeout=self.spec.timeout)
        except ValueError as exc:  # netmiko: the commit's output lacked its success marker
            reasons = [line.strip() for line in str(exc).splitlines() if re.match(r"\s*(error|\S.*failed)", line, re.I)]
            raise CommandRefused(f"The router refused to commit ({'; '.join(reasons) or 'commit failed'}).") from None
        except Exception as exc:  # noqa: BLE001
            raise self._translate(exc, "committing") from None
        if self.saves_after_commit:
            try:
                self.log("> save")
                self.conn.send_command("save", expect_string=r"#", read_timeout=self.spec.timeout)
            except Exception as exc:  # noqa: BLE001
                error = self._translate(exc, "saving the configuration")
                error.not_applied = ["save (the change is live but would not survive a reboot)"]
                raise error from None

    def _discarded(self, exc: RouterError, lines: list[str]) -> RouterError:
        try:
            self.log(f"< {self.discard}")
            self.conn.send_command(self.discard, expect_string=r"#", read_timeout=self.spec.timeout)
            self._leave_config()
        except Exception as undo_exc:  # noqa: BLE001
            return CommandRefused(f"{exc} Discarding the uncommitted lines failed too ({undo_exc}); nothing "
                                  "was committed.", applied=[], not_applied=lines + ["commit"])
        return CommandRefused(f"{exc} Nothing was committed: the running configuration is as it was.",
                              applied=[], not_applied=lines + ["commit"], rolled_back=lines)

    # -- verification ---------------------------------------------------------------------
    def verify(self):
        config = self.set_config()
        missing = [line for line in self.wanted() if not config.has(line)]
        export = self._export_of(config)
        problems = []
        if not export.exports_to(self.spec.collector_host, self.spec.collector_port):
            problems.append(f"nothing exports to {self.spec.collector_host}:{self.spec.collector_port}")
        watched = [name for name in self.spec.interfaces if name not in export.interfaces]
        if watched:
            problems.append(f"not watching {', '.join(watched)}")
        if missing and not problems:
            problems.append("missing: " + "; ".join(missing))
        return Verification(ok=not problems, problems=problems)

    def read_export(self) -> ExportConfig:
        return self._export_of(self.set_config())

    @abc.abstractmethod
    def _export_of(self, config: SetConfig) -> ExportConfig:
        """Our export as the configuration shows it."""

    # -- clock ----------------------------------------------------------------------------
    ntp_command: str   # operational command showing the NTP client's state
    time_command: str  # operational command printing the router's clock

    @staticmethod
    @abc.abstractmethod
    def ntp_state(text: str) -> tuple[bool, bool, str]:
        """(NTP enabled, synchronised, a line for people) from ``ntp_command``'s output."""

    @staticmethod
    @abc.abstractmethod
    def router_time(text: str) -> datetime | None:
        """The router's clock in UTC from ``time_command``'s output."""

    def read_clock(self) -> ClockState:
        enabled, synced, detail = self.ntp_state(self._show(self.ntp_command))
        before = datetime.now(timezone.utc)
        text = self._show(self.time_command)
        read_at = before + (datetime.now(timezone.utc) - before) / 2  # halfway through the round trip
        return ClockState(ntp_enabled=enabled, synchronized=synced, detail=detail, read_at=read_at,
                          router_time=self.router_time(text))
