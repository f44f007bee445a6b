"""The subscriber directory: which account and service held which address, from when to when.

Every flow and every search answer is stamped from here, so validity periods are half-open
``[valid_from, valid_to)`` and an open ``valid_to`` means "still held".

The rule (README, "Who held an address"): among the assignments whose prefix contains the
address and whose period contains the moment, the most specific prefix wins (a business
customer's /29 inside a pool's /24); the database refuses two assignments of the same prefix
with overlapping periods (constraint ``ip_assignments_no_overlap``), so that answer is unique.
Should a database ever hold such a pair, the later ``valid_from`` wins. ``who`` is the one
implementation for SQL readers; the collector's bulk lookup (``collector/attribution.py``)
applies the same rule in memory, and ``tests/test_who_rule.py`` holds them to one answer.
"""
from __future__ import annotations

import csv
import hashlib
import ipaddress
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.dialects.postgresql import CIDR, ExcludeConstraint, insert

from . import audit
from .database import Base

CSV_HEADER = ["account", "service", "prefix", "valid_from", "valid_to"]


class IPAssignment(Base):
    __tablename__ = "ip_assignments"
    __table_args__ = (
        sa.UniqueConstraint("prefix", "valid_from"),
        ExcludeConstraint(("prefix", "="), (sa.text("tstzrange(valid_from, valid_to)"), "&&"),
                          name="ip_assignments_no_overlap", using="gist", ops={"prefix": "inet_ops"},
                          deferrable=True, initially="DEFERRED"),
        sa.Index("ip_assignments_prefix", "prefix", postgresql_using="gist", postgresql_ops={"prefix": "inet_ops"}),
        sa.Index("ip_assignments_account", "account"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    account: Mapped[str]
    service: Mapped[str]
    prefix: Mapped[str] = mapped_column(CIDR)
    valid_from: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    valid_to: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    source: Mapped[str] = mapped_column(default="import")


@dataclass(frozen=True)
class Assignment:
    """One row of the directory as a host panel or a CSV file supplies it."""

    account: str
    service: str
    prefix: str
    valid_from: datetime
    valid_to: datetime | None = None

    @classmethod
    def parse(cls, account, service, prefix, valid_from, valid_to=None) -> "Assignment":
        """Validate and normalise; raises ValueError with a sentence naming the bad field."""
        if not (account or "").strip():
            raise ValueError("account is empty")
        if not (service or "").strip():
            raise ValueError("service is empty")
        try:
            network = ipaddress.ip_network(str(prefix).strip(), strict=False)
        except ValueError:
            raise ValueError(f"prefix {prefix!r} is not an IP address or CIDR prefix") from None
        start = parse_time(valid_from, "valid_from")
        end = parse_time(valid_to, "valid_to") if valid_to not in (None, "") else None
        if end is not None and end <= start:
            raise ValueError("valid_to must be later than valid_from")
        return cls(account.strip(), service.strip(), str(network), start, end)


def parse_time(value, name: str = "time") -> datetime:
    """An aware datetime from ISO 8601 text or a datetime; naive values are taken as UTC."""
    if isinstance(value, datetime):
        moment = value
    else:
        text = str(value or "").strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{name} {value!r} is not an ISO 8601 date-time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def read_csv(lines: Iterable[str]) -> list[Assignment]:
    """Parse a directory CSV; raises ValueError listing every bad line (nothing is half-read)."""
    reader = csv.DictReader(lines)
    if reader.fieldnames is None or [f.strip() for f in reader.fieldnames] != CSV_HEADER:
        raise ValueError(f"the first line must be the header {','.join(CSV_HEADER)}")
    rows, errors = [], []
    for line_no, record in enumerate(reader, start=2):
        try:
            rows.append(Assignment.parse(*(record.get(key) for key in CSV_HEADER)))
        except (ValueError, TypeError) as exc:
            errors.append(f"line {line_no}: {exc}")
    if errors:
        raise ValueError("; ".join(errors))
    return rows


class OverlapError(ValueError):
    """Two assignments of the same prefix would cover the same moment."""


def save_assignments(session: Session, rows: Iterable[Assignment], source: str = "import") -> int:
    """Insert or update (by prefix and start) the given assignments; returns how many.

    Raises OverlapError (nothing saved) when the result would give one prefix two holders at
    once, whether within ``rows`` or with assignments already stored.
    """
    rows = list(rows)
    if not rows:
        return 0
    _refuse_overlaps_within(rows)
    values = [
        dict(account=r.account, service=r.service, prefix=r.prefix, valid_from=r.valid_from,
             valid_to=r.valid_to, source=source)
        for r in rows
    ]
    statement = insert(IPAssignment).values(values)
    statement = statement.on_conflict_do_update(
        index_elements=["prefix", "valid_from"],
        set_={key: statement.excluded[key] for key in ("account", "service", "valid_to", "source")},
    )
    savepoint = session.begin_nested()
    try:
        session.execute(statement)
        # The constraint is deferred so that one import may close a period and open the next
        # in any row order; checking it here ties a failure to this call, not to a later commit.
        session.execute(sa.text("set constraints ispflow.ip_assignments_no_overlap immediate"))
    except sa.exc.IntegrityError as exc:
        savepoint.rollback()
        if getattr(exc.orig, "pgcode", None) != "23P01":
            raise
        raise OverlapError(_overlap_message(exc)) from None
    savepoint.commit()
    session.execute(sa.text("set constraints ispflow.ip_assignments_no_overlap deferred"))
    return len(values)


def _refuse_overlaps_within(rows: list[Assignment]) -> None:
    by_prefix: dict[str, list[Assignment]] = {}
    for row in rows:
        by_prefix.setdefault(row.prefix, []).append(row)
    for prefix, periods in by_prefix.items():
        periods.sort(key=lambda r: r.valid_from)
        for earlier, later in zip(periods, periods[1:]):
            if earlier.valid_from == later.valid_from:
                continue  # the same assignment twice: the later line updates it
            if earlier.valid_to is None or earlier.valid_to > later.valid_from:
                raise OverlapError(
                    f"prefix {prefix}: {earlier.account} from {earlier.valid_from.isoformat()} "
                    f"{'with no end' if earlier.valid_to is None else 'to ' + earlier.valid_to.isoformat()} "
                    f"overlaps {later.account} from {later.valid_from.isoformat()}; "
                    "end the earlier assignment when the later one starts")


def _overlap_message(exc) -> str:
    detail = getattr(getattr(exc.orig, "diag", None), "message_detail", "") or ""
    return ("an assignment overlaps one already stored for the same prefix "
            f"({detail.strip() or 'see the directory'}); end the earlier assignment when the later one starts")


def replace_source(session: Session, rows: Iterable[Assignment], source: str) -> int:
    """Make the rows from one source (e.g. the host panel) exactly ``rows``."""
    session.execute(sa.delete(IPAssignment).where(IPAssignment.source == source))
    return save_assignments(session, rows, source)


def who(session: Session, address: str, at: datetime) -> IPAssignment | None:
    """The assignment that covered ``address`` at moment ``at`` by the directory's rule (above).

    ``session`` is an ORM Session, or a Connection (wrapped in a Session here).
    """
    ipaddress.ip_address(address)
    if isinstance(session, sa.Connection):
        session = Session(bind=session)
    query = (
        sa.select(IPAssignment)
        .where(
            sa.text("ip_assignments.prefix >>= cast(:address as inet)"),
            IPAssignment.valid_from <= at,
            sa.or_(IPAssignment.valid_to.is_(None), IPAssignment.valid_to > at),
        )
        .order_by(sa.text("masklen(ip_assignments.prefix) desc"), IPAssignment.valid_from.desc())
        .limit(1)
    )
    return session.execute(query, {"address": address}).scalar_one_or_none()


def assignments_of_account(session: Session, account: str, at: datetime | None = None) -> list[IPAssignment]:
    """The prefixes an account holds at ``at`` (default now): what a customer may see."""
    at = at or datetime.now(timezone.utc)
    query = (
        sa.select(IPAssignment)
        .where(
            IPAssignment.account == account,
            IPAssignment.valid_from <= at,
            sa.or_(IPAssignment.valid_to.is_(None), IPAssignment.valid_to > at),
        )
        .order_by(IPAssignment.prefix)
    )
    return list(session.execute(query).scalars())


def rows_sha256(rows: Iterable[Assignment]) -> str:
    """SHA-256 of assignments in a canonical form: what a sync (which has no file) imported."""
    canonical = [[r.account, r.service, r.prefix, r.valid_from.isoformat(),
                  r.valid_to.isoformat() if r.valid_to else None] for r in rows]
    return hashlib.sha256(json.dumps(canonical, separators=(",", ":")).encode()).hexdigest()


def record_change(session: Session, *, actor: str, role: str | None, action: str, rows: int, sha256: str,
                  **details) -> int:
    """Audit an import or sync in its own transaction: it changes every later answer of "who held"."""
    return audit.record(session, actor=actor, role=role, action=action, row_count=rows,
                        criteria={"rows": rows, "sha256": sha256, **details})


def record_lookup(session: Session, *, actor: str, role: str | None, address: str, at: datetime,
                  found: "IPAssignment | None", case_ref: str | None = None) -> int:
    """Audit a directory lookup (who held an address), found or not; never what was found."""
    return audit.record(session, actor=actor, role=role, action="who", case_ref=case_ref,
                        row_count=1 if found is not None else 0,
                        criteria={"ip": address, "at": at.astimezone(timezone.utc).isoformat(),
                                  "source": "directory"})
