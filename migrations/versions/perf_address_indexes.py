"""Flows' address indexes key on the address alone, so btree deduplication packs them.

The (address, ts_start) btrees had a distinct key per row and cost ~83 B per flow together,
more than half of a flow's table row. Keyed on the address alone, every flow of one address in
a chunk shares one key and PostgreSQL's btree deduplication stores it once with a list of row
pointers (6 B each): measured ~8 B per flow per index (docs/storage.md). Searches keep the same
SQL; a chunk is one day, so the time condition is chunk exclusion plus a filter on the rows of
the address in that day.

Rebuilding the indexes reads every chunk once: on a large database run the upgrade in a quiet
hour.

Revision ID: perf_address_indexes
Revises: analytics_rollups
"""
from alembic import op

revision = "perf_address_indexes"
down_revision = "analytics_rollups"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        drop index if exists ispflow.flows_src_addr;
        drop index if exists ispflow.flows_dst_addr;
        create index flows_src_addr on ispflow.flows (src_addr);
        create index flows_dst_addr on ispflow.flows (dst_addr);
    """)


def downgrade() -> None:
    op.execute("""
        drop index if exists ispflow.flows_src_addr;
        drop index if exists ispflow.flows_dst_addr;
        create index flows_src_addr on ispflow.flows (src_addr, ts_start);
        create index flows_dst_addr on ispflow.flows (dst_addr, ts_start);
    """)
