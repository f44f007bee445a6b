"""What the panel, the CLI and the jobs call: each answer comes with its audit entry.

The audit entry (who, role, criteria, case reference, number of rows, export hash) is written
in the same transaction as the question is answered, so no answer leaves without one. The
results themselves are never stored.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from .. import audit
from ..module_settings import ModuleSettings, load, months_before
from .criteria import Criteria, parse_criteria
from .query import PAGE_SIZE, Page, Totals, fetch_page, totals
from .who import Holder, who_held


@dataclass(frozen=True)
class SearchResult:
    criteria: Criteria
    page: Page
    totals: Totals
    order: str
    cursor: str | None


def criteria_from_text(conn, values, require_case: bool = True) -> tuple[Criteria, ModuleSettings]:
    """Parse a search with the module settings (time zone, retention) stored in the database."""
    module = load(conn)
    criteria = parse_criteria(values, zone=module.zone, retention_months=module.retention_flows_months,
                              require_case=require_case)
    return criteria, module


def search(conn, criteria: Criteria, *, actor: str, role: str, order: str = "newest",
           cursor: str | None = None, size: int = PAGE_SIZE) -> SearchResult:
    """One page and the totals; audited as ``search`` (``search.page`` for later pages). Commits."""
    page = fetch_page(conn, criteria, order, cursor, size)
    overall = totals(conn, criteria)
    audit.record(conn, actor=actor, role=role, action="search.page" if cursor else "search",
                 criteria={**criteria.to_json(), "order": order}, case_ref=criteria.case_ref,
                 row_count=overall.flows)
    conn.commit()
    return SearchResult(criteria, page, overall, order, cursor)


def lookup(conn, address: str, at: datetime, port: int | None, *, case_ref: str, actor: str,
           role: str, remote: str | None = None) -> Holder | None:
    """Who held the address at the moment (talking to ``remote``); audited as ``who``. Commits."""
    module = load(conn)
    since = months_before(at, module.retention_nat_months)
    holder = who_held(conn, address, at, port, nat_since=since, remote=remote)
    criteria = {"ip": address, "at": at.astimezone(timezone.utc).isoformat()}
    if port is not None:
        criteria["port"] = port
    if remote:
        criteria["remote"] = remote
    answers = len(holder.candidates) if holder and holder.candidates else 1 if holder else 0
    audit.record(conn, actor=actor, role=role, action="who", criteria=criteria, case_ref=case_ref,
                 row_count=answers)
    conn.commit()
    return holder
