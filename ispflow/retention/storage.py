"""Storage statistics: how much the retained data takes, how fast it grows, when the disk fills.

Admins of other NetFlow tools measure this with ``du`` over dated directories; here the same
answers come from the chunk sizes TimescaleDB reports (one chunk per day), plus hourly samples
of every table's size kept in ``ispflow.storage_samples`` for the growth graph.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from .. import module_settings
from ..config import Settings
from ..database import engine_for

GROWTH_WINDOW_DAYS = 7      # complete days averaged for the growth per day
SAMPLES_KEPT_DAYS = 400     # storage samples hold no personal data; about 13 months for the graph
DATABASE = "database"       # storage_samples.relation of the whole database's size


@dataclass(frozen=True)
class DayUsage:
    day: date
    bytes: int
    rows: int


@dataclass(frozen=True)
class Volume:
    """The file system holding the database's data directory (only when it is on this machine)."""

    path: str
    total_bytes: int
    free_bytes: int


@dataclass
class StorageReport:
    at: datetime
    tables: dict[str, int]               # relation -> total bytes (tables, indexes, chunks)
    rows: dict[str, int]                 # relation -> estimated rows
    database_bytes: int
    days: list[DayUsage]                 # retained hypertables per UTC day, oldest first
    retention_days: int                  # the flows period in days, as of now
    volume: Volume | None = None
    volume_unknown_because: str = ""
    samples: list[tuple[datetime, int]] = field(default_factory=list)  # (at, database bytes)

    @property
    def total_bytes(self) -> int:
        return sum(self.tables.values())

    @property
    def months(self) -> list[DayUsage]:
        """Per calendar month (``day`` is the month's first day)."""
        merged: dict[date, list[int]] = {}
        for d in self.days:
            bucket = merged.setdefault(d.day.replace(day=1), [0, 0])
            bucket[0] += d.bytes
            bucket[1] += d.rows
        return [DayUsage(month, b, r) for month, (b, r) in sorted(merged.items())]

    @property
    def complete_days(self) -> list[DayUsage]:
        today = self.at.astimezone(timezone.utc).date()
        return [d for d in self.days if d.day < today][-GROWTH_WINDOW_DAYS:]

    @property
    def growth_per_day(self) -> int | None:
        """New bytes per day: the mean of the last complete days (None before one has passed)."""
        days = self.complete_days
        return sum(d.bytes for d in days) // len(days) if days else None

    @property
    def rows_per_day(self) -> int | None:
        days = self.complete_days
        return sum(d.rows for d in days) // len(days) if days else None

    @property
    def days_held(self) -> int:
        """Days of data retained now, from the oldest chunk's start."""
        if not self.days:
            return 0
        return (self.at.astimezone(timezone.utc).date() - self.days[0].day).days + 1

    @property
    def needed_for_period(self) -> int | None:
        """Bytes the retained hypertables will take once they hold the whole period at today's rate."""
        growth = self.growth_per_day
        return None if growth is None else growth * self.retention_days

    @property
    def fills_on(self) -> date | None:
        """The day the volume fills at today's rate; None if it never does or cannot be known.

        Growth stops once the whole period is held (retention then drops a day per day), so the
        volume fills only if what is still to come exceeds its free space.
        """
        growth, needed = self.growth_per_day, self.needed_for_period
        if self.volume is None or not growth:
            return None
        retained_now = sum(d.bytes for d in self.days)
        still_to_come = max(0, needed - retained_now)
        if still_to_come <= self.volume.free_bytes:
            return None
        return self.at.date() + timedelta(days=self.volume.free_bytes // growth)


def human_bytes(value: int | None) -> str:
    """Decimal units, as disks are sold (1 GB = 10⁹ bytes)."""
    if value is None:
        return "—"
    size = float(value)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(size) < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def hypertables(conn) -> list[str]:
    return list(conn.execute(sa.text(
        "select hypertable_name from timescaledb_information.hypertables where hypertable_schema = 'ispflow' "
        "order by hypertable_name")).scalars())


def table_sizes(conn) -> tuple[dict[str, int], dict[str, int]]:
    """(bytes, estimated rows) per ispflow table; hypertables include their chunks."""
    sizes, rows = {}, {}
    hyper = set(hypertables(conn))
    for name in hyper:
        relation = f"ispflow.{name}"
        sizes[relation] = conn.execute(sa.text("select coalesce(hypertable_size(cast(:r as regclass)), 0)"),
                                       {"r": relation}).scalar()
        rows[relation] = conn.execute(sa.text(
            "select coalesce(sum(greatest(pc.reltuples, 0)), 0)::bigint from timescaledb_information.chunks c "
            "join pg_class pc on pc.oid = format('%I.%I', c.chunk_schema, c.chunk_name)::regclass "
            "where c.hypertable_schema = 'ispflow' and c.hypertable_name = :t"), {"t": name}).scalar()
    plain = conn.execute(sa.text(
        "select c.relname, pg_total_relation_size(c.oid) as bytes, greatest(c.reltuples, 0)::bigint as rows "
        "from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = 'ispflow' and c.relkind = 'r'")).all()
    for r in plain:
        if r.relname not in hyper:
            sizes[f"ispflow.{r.relname}"] = r.bytes
            rows[f"ispflow.{r.relname}"] = r.rows
    return sizes, rows


def usage_per_day(conn) -> list[DayUsage]:
    """Bytes and estimated rows per UTC day, summed over the flow, NAT and roll-up hypertables."""
    from .jobs import period_field

    per_day: dict[date, list[int]] = {}
    for name in hypertables(conn):
        if not period_field(name):
            continue
        relation = f"ispflow.{name}"
        sizes = {r.chunk_name: r.total_bytes or 0 for r in conn.execute(
            sa.text("select chunk_name, total_bytes from chunks_detailed_size(cast(:r as regclass))"), {"r": relation})}
        chunks = conn.execute(sa.text(
            "select c.chunk_name, c.range_start, greatest(pc.reltuples, 0)::bigint as rows "
            "from timescaledb_information.chunks c "
            "join pg_class pc on pc.oid = format('%I.%I', c.chunk_schema, c.chunk_name)::regclass "
            "where c.hypertable_schema = 'ispflow' and c.hypertable_name = :t"), {"t": name}).all()
        for c in chunks:
            bucket = per_day.setdefault(c.range_start.astimezone(timezone.utc).date(), [0, 0])
            bucket[0] += sizes.get(c.chunk_name, 0)
            bucket[1] += c.rows
    return [DayUsage(day, b, r) for day, (b, r) in sorted(per_day.items())]


def database_volume(conn, database_url: str) -> tuple[Volume | None, str]:
    """The data directory's file system, or None and why it cannot be measured from here."""
    host = make_url(database_url).host or ""
    if host not in ("", "localhost", "127.0.0.1", "::1") and not host.startswith("/"):
        return None, f"the database runs on {host}, not on this machine"
    try:
        with conn.begin_nested():
            directory = conn.execute(sa.text("select setting from pg_settings where name = 'data_directory'")).scalar()
    except sa.exc.DBAPIError:
        directory = None
    if not directory:
        return None, "the database user may not read data_directory (grant pg_read_all_settings)"
    if not os.path.isdir(directory):
        return None, f"the data directory {directory} is not on this machine"
    stats = os.statvfs(directory)
    return Volume(directory, stats.f_blocks * stats.f_frsize, stats.f_bavail * stats.f_frsize), ""


def storage_report(conn, settings: Settings, now: datetime | None = None, sample_days: int = 30) -> StorageReport:
    """Everything the storage page shows, read without writing."""
    now = now or datetime.now(timezone.utc)
    sizes, rows = table_sizes(conn)
    flows_months = module_settings.load(conn).retention_flows_months
    volume, why = database_volume(conn, settings.DATABASE_URL)
    samples = conn.execute(sa.text(
        "select at, total_bytes from ispflow.storage_samples where relation = :db and at >= :since order by at"),
        {"db": DATABASE, "since": now - timedelta(days=sample_days)}).all()
    return StorageReport(
        at=now, tables=sizes, rows=rows,
        database_bytes=conn.execute(sa.text("select pg_database_size(current_database())")).scalar(),
        days=usage_per_day(conn),
        retention_days=(now - module_settings.months_before(now, flows_months)).days,
        volume=volume, volume_unknown_because=why,
        samples=[(s.at, s.total_bytes) for s in samples],
    )


def analyze_unmeasured_chunks(conn) -> int:
    """ANALYZE chunks without a row estimate, and the open ones (a sample: cheap even on big chunks)."""
    chunks = conn.execute(sa.text(
        "select c.chunk_schema, c.chunk_name from timescaledb_information.chunks c "
        "join pg_class pc on pc.oid = format('%I.%I', c.chunk_schema, c.chunk_name)::regclass "
        "where c.hypertable_schema = 'ispflow' and (pc.reltuples < 0 or c.range_end > now())")).all()
    quote = conn.dialect.identifier_preparer.quote
    for c in chunks:
        conn.execute(sa.text(f"analyze {quote(c.chunk_schema)}.{quote(c.chunk_name)}"))
    return len(chunks)


def sample_storage(settings: Settings | None = None, now: datetime | None = None) -> int:
    """The hourly job: store every ispflow table's size (and the database's); returns rows stored."""
    from ..jobs import job_settings

    settings = settings or job_settings()
    now = (now or datetime.now(timezone.utc)).replace(microsecond=0)
    with engine_for(settings.owner_database_url).begin() as conn:  # ANALYZE is the tables' owner's to run
        analyze_unmeasured_chunks(conn)
    engine = engine_for(settings.DATABASE_URL)
    with engine.begin() as conn:
        sizes, rows = table_sizes(conn)
        sizes[DATABASE] = conn.execute(sa.text("select pg_database_size(current_database())")).scalar()
        conn.execute(sa.text(
            "insert into ispflow.storage_samples (at, relation, total_bytes, row_estimate) "
            "values (:at, :relation, :bytes, :rows) on conflict (relation, at) do update "
            "set total_bytes = excluded.total_bytes, row_estimate = excluded.row_estimate"),
            [{"at": now, "relation": r, "bytes": b, "rows": rows.get(r)} for r, b in sizes.items()])
        conn.execute(sa.text("delete from ispflow.storage_samples where at < :before"),
                     {"before": now - timedelta(days=SAMPLES_KEPT_DAYS)})
    return len(sizes)
