"""One holder per prefix at a time: an exclusion constraint on the subscriber directory.

Nested prefixes may overlap in time (the most specific wins); the same prefix may not. Rows
already stored that break this are rewritten by the rule the Who page has always applied
(the assignment that started last wins): an earlier assignment is cut where a later one
starts and resumes where it ends, if it lasts longer. The log says how many prefixes changed.

Revision ID: schema_one_holder
Revises: 0001
"""
import logging
from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision = "schema_one_holder"
down_revision = "0001"
branch_labels = None
depends_on = None

_FOREVER = datetime.max.replace(tzinfo=timezone.utc)

_OVERLAPPING = """
select a.id, text(a.prefix) as prefix, a.account, a.service, a.valid_from, a.valid_to, a.source
from ispflow.ip_assignments a
where exists (select 1 from ispflow.ip_assignments b
              where b.prefix = a.prefix and b.id <> a.id
                and tstzrange(a.valid_from, a.valid_to) && tstzrange(b.valid_from, b.valid_to))
order by a.prefix, a.valid_from
"""


def segments(rows):
    """[(row, start, end)] covering what ``rows`` (one prefix) cover, the latest start winning."""
    bounds = sorted({r.valid_from for r in rows} | {r.valid_to or _FOREVER for r in rows})
    pieces = []
    for start, end in zip(bounds, bounds[1:]):
        covering = [r for r in rows if r.valid_from <= start and (r.valid_to or _FOREVER) >= end]
        if not covering:
            continue
        winner = max(covering, key=lambda r: r.valid_from)
        if pieces and pieces[-1][0] is winner and pieces[-1][2] == start:
            pieces[-1] = (winner, pieces[-1][1], end)
        else:
            pieces.append((winner, start, end))
    return [(row, start, None if end == _FOREVER else end) for row, start, end in pieces]


def upgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.text(_OVERLAPPING)).all()
    by_prefix = {}
    for row in rows:
        by_prefix.setdefault(row.prefix, []).append(row)
    for prefix, group in by_prefix.items():
        conn.execute(sa.text("delete from ispflow.ip_assignments where id = any(:ids)"),
                     {"ids": [r.id for r in group]})
        for row, start, end in segments(group):
            conn.execute(sa.text(
                "insert into ispflow.ip_assignments (account, service, prefix, valid_from, valid_to, source) "
                "values (:account, :service, cast(:prefix as cidr), :start, :end, :source)"),
                {"account": row.account, "service": row.service, "prefix": prefix, "start": start,
                 "end": end, "source": row.source})
    if by_prefix:
        logging.getLogger("alembic.runtime.migration").warning(
            "ip_assignments: overlapping periods of %d prefixes rewritten so the later start wins: %s",
            len(by_prefix), ", ".join(sorted(by_prefix)[:20]))
    op.execute("""
        alter table ispflow.ip_assignments add constraint ip_assignments_no_overlap
            exclude using gist (prefix inet_ops with =, tstzrange(valid_from, valid_to) with &&)
            deferrable initially deferred
    """)


def downgrade() -> None:
    op.execute("alter table ispflow.ip_assignments drop constraint ip_assignments_no_overlap")
