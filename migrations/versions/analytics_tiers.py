"""Roll-ups for an account's top talkers and for wide prefixes' graphs.

An account's month of top sources, destinations and conversations was ranked from its raw
flows (seconds for a heavy account), and a graph of a prefix spanning many subscribers summed
every address's 5-minute rows. These two tables hold what those pages read (docs/storage.md,
"Roll-ups").

The roll-up watermark is removed, so the job computes every retained hour again (a day per
transaction, within its time budget per run) and the new tables cover the history too; until
it has caught up, pages read the raw flows for the hours not yet done.

Revision ID: analytics_tiers
Revises: perf_address_indexes
"""
from alembic import op

revision = "analytics_tiers"
down_revision = "perf_address_indexes"
branch_labels = None
depends_on = None

UPGRADE = r"""
create table ispflow.rollup_account_talkers_1h (
    bucket     timestamptz not null,
    account    text not null,
    kind       text not null check (kind in ('source', 'destination', 'conversation')),
    src_addr   inet,
    dst_addr   inet,
    bytes      bigint not null,
    packets    bigint not null,
    flows      bigint not null
);
select create_hypertable('ispflow.rollup_account_talkers_1h', 'bucket', chunk_time_interval => interval '30 days',
                         create_default_indexes => false);
create index rollup_account_talkers_1h_account on ispflow.rollup_account_talkers_1h (account, kind, bucket);

create table ispflow.rollup_prefix_5m (
    bucket     timestamptz not null,
    prefix     cidr not null,
    direction  text not null check (direction in ('in', 'out')),
    bytes      bigint not null,
    packets    bigint not null,
    flows      bigint not null
);
select create_hypertable('ispflow.rollup_prefix_5m', 'bucket', chunk_time_interval => interval '30 days',
                         create_default_indexes => false);
create index rollup_prefix_5m_prefix on ispflow.rollup_prefix_5m (prefix, bucket) include (direction, bytes);

delete from ispflow.analytics_watermarks where name = 'rollups';
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute("drop table if exists ispflow.rollup_account_talkers_1h, ispflow.rollup_prefix_5m cascade")
