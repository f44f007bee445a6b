"""Module settings an admin changes in the panel, kept in ``ispflow.settings``.

Environment variables (``ispflow.config``) say how the software is deployed; these say how
the ISP runs the module, and can change while it runs: the collector, the jobs and the panel
read them from the database.
"""
from __future__ import annotations

import ipaddress
import json
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa

from .endpoints import EndpointError, format_endpoint, parse_endpoint

KEY = "module"


@dataclass(frozen=True)
class ModuleSettings:
    enabled: bool = True
    retention_flows_months: int = 6      # Czech Act 127/2005 §97: traffic data kept 6 months
    retention_nat_months: int = 6
    retention_rollups_months: int = 13
    retention_audit_months: int = 60
    own_prefixes: tuple[str, ...] = ()   # the ISP's own (subscriber) address space
    collector_listen: str = "0.0.0.0:2055"
    export_target: str = ""              # HOST:PORT routers export to
    timezone: str = "UTC"                # for display

    def validated(self) -> "ModuleSettings":
        """A normalised copy; raises ValueError naming the field that is wrong."""
        for name in ("retention_flows_months", "retention_nat_months", "retention_rollups_months",
                     "retention_audit_months"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 1 <= value <= 120:
                raise ValueError(f"{name}: a whole number of months from 1 to 120")
        prefixes = []
        for prefix in self.own_prefixes:
            try:
                prefixes.append(str(ipaddress.ip_network(prefix.strip(), strict=False)))
            except ValueError:
                raise ValueError(f"own_prefixes: {prefix!r} is not a CIDR prefix") from None
        endpoints = {}
        for name in ("collector_listen", "export_target"):
            value = getattr(self, name).strip()
            try:
                endpoints[name] = format_endpoint(*parse_endpoint(value, listen=name == "collector_listen")) if value else ""
            except EndpointError as exc:
                raise ValueError(f"{name}: {exc}") from None
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone: {self.timezone!r} is not a time zone name such as Europe/Prague") from None
        return replace(self, own_prefixes=tuple(prefixes), **endpoints)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def load(conn) -> ModuleSettings:
    """The current settings (defaults for what was never saved). ``conn``: Connection or Session."""
    return load_section(conn, KEY, ModuleSettings)


def save(conn, settings: ModuleSettings) -> ModuleSettings:
    """Validate and store; the caller commits."""
    return save_section(conn, KEY, settings)


def load_section(conn, key: str, cls):
    """A settings dataclass stored under ``key`` (defaults for what was never saved).

    Each feature with its own settings page keeps its own key, so saving one page never
    overwrites another's values. Tuple fields are stored as JSON lists.
    """
    stored = conn.execute(sa.text("select value from ispflow.settings where key = :key"), {"key": key}).scalar()
    if not stored:
        return cls()
    kinds = {f.name: f.default for f in fields(cls)}
    values = {k: tuple(v) if isinstance(kinds[k], tuple) else v for k, v in stored.items() if k in kinds}
    return cls(**values)


def save_section(conn, key: str, settings):
    """Validate (``settings.validated()``) and store under ``key``; the caller commits."""
    settings = settings.validated()
    conn.execute(
        sa.text(
            "insert into ispflow.settings (key, value, updated_at) values (:key, cast(:value as jsonb), now()) "
            "on conflict (key) do update set value = excluded.value, updated_at = now()"
        ),
        {"key": key, "value": json.dumps(asdict(settings))},
    )
    return settings


def months_before(moment: datetime, months: int) -> datetime:
    """The same day and time ``months`` calendar months earlier (clamped to the month's end)."""
    year, month = divmod(moment.year * 12 + moment.month - 1 - months, 12)
    month += 1
    for day in (moment.day, 30, 29, 28):
        try:
            return moment.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    raise AssertionError("unreachable")
