"""Which closed chunks of flows have been rewritten in subscriber order (ispflow.retention.chunk_order).

Revision ID: perf_ordered_chunks
Revises: perf_brin_autosummarize
"""
from alembic import op

revision = "perf_ordered_chunks"
down_revision = "perf_brin_autosummarize"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        create table ispflow.ordered_chunks (
            chunk text primary key,
            range_start timestamptz not null,
            ordered_at timestamptz not null default now(),
            row_count bigint not null,
            seconds double precision not null
        )""")


def downgrade() -> None:
    op.execute("drop table if exists ispflow.ordered_chunks")
