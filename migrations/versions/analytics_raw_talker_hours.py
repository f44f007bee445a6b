"""Account-hours too small for talker rows: a flag on their remainder rows (rollups.SHALLOW).

Revision ID: analytics_raw_talker_hours
Revises: perf_ordered_chunks
"""
from alembic import op

revision = "analytics_raw_talker_hours"
down_revision = "perf_ordered_chunks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A constant default: PostgreSQL records it in the catalogue, no chunk is rewritten.
    op.execute("alter table ispflow.rollup_account_talkers_1h add column raw boolean not null default false")
    # A report finds an account's raw hours here, not among all of its talker rows.
    op.execute("create index rollup_account_talkers_1h_raw on ispflow.rollup_account_talkers_1h "
               "(account, bucket) where raw")


def downgrade() -> None:
    op.execute("drop index if exists ispflow.rollup_account_talkers_1h_raw")
    op.execute("alter table ispflow.rollup_account_talkers_1h drop column raw")
