"""Traffic roll-ups for graphs, top reports and billing, and the roll-up job's watermark.

Revision ID: analytics_rollups
Revises: hardening_security
Create Date: 2026-11-29
"""
from alembic import op

revision = "analytics_rollups"
down_revision = "hardening_security"
branch_labels = None
depends_on = None

# What each table holds and how flows are split into buckets: docs/storage.md ("Roll-ups").
# The graphs' indexes include the columns they sum, so a month is read from the index alone
# (the table's rows for one account are scattered over as many pages as there are rows).
UPGRADE = r"""
create table ispflow.rollup_traffic_5m (
    bucket     timestamptz not null,
    address    inet not null,
    account    text,
    service    text,
    direction  text not null check (direction in ('in', 'out')),
    bytes      bigint not null,
    packets    bigint not null,
    flows      bigint not null
);
select create_hypertable('ispflow.rollup_traffic_5m', 'bucket', chunk_time_interval => interval '7 days',
                         create_default_indexes => false);
create index rollup_traffic_5m_account on ispflow.rollup_traffic_5m (account, bucket) include (direction, bytes);
create index rollup_traffic_5m_address on ispflow.rollup_traffic_5m (address, bucket) include (account, direction, bytes);
create index rollup_traffic_5m_bucket on ispflow.rollup_traffic_5m using brin (bucket);

create table ispflow.rollup_network_5m (
    bucket     timestamptz not null,
    service    text,
    direction  text check (direction in ('in', 'out')),
    bytes      bigint not null,
    packets    bigint not null,
    flows      bigint not null
);
select create_hypertable('ispflow.rollup_network_5m', 'bucket', chunk_time_interval => interval '30 days',
                         create_default_indexes => false);
create index rollup_network_5m_bucket on ispflow.rollup_network_5m (bucket);

create table ispflow.rollup_interface_5m (
    bucket       timestamptz not null,
    exporter_id  integer not null,
    if_index     integer not null,
    direction    text not null check (direction in ('in', 'out')),
    bytes        bigint not null,
    packets      bigint not null,
    flows        bigint not null
);
select create_hypertable('ispflow.rollup_interface_5m', 'bucket', chunk_time_interval => interval '30 days',
                         create_default_indexes => false);
create index rollup_interface_5m_port on ispflow.rollup_interface_5m (exporter_id, if_index, bucket) include (direction, bytes);

create table ispflow.rollup_accounts_1h (
    bucket     timestamptz not null,
    account    text not null,
    service    text,
    direction  text not null check (direction in ('in', 'out')),
    bytes      bigint not null,
    packets    bigint not null,
    flows      bigint not null
);
select create_hypertable('ispflow.rollup_accounts_1h', 'bucket', chunk_time_interval => interval '30 days',
                         create_default_indexes => false);
create index rollup_accounts_1h_bucket on ispflow.rollup_accounts_1h (bucket);

-- account null: the whole network's row; otherwise that account's share.
create table ispflow.rollup_apps_1h (
    bucket     timestamptz not null,
    account    text,
    protocol   smallint not null,
    port       integer not null,
    bytes      bigint not null,
    packets    bigint not null,
    flows      bigint not null
);
select create_hypertable('ispflow.rollup_apps_1h', 'bucket', chunk_time_interval => interval '30 days',
                         create_default_indexes => false);
create index rollup_apps_1h_account on ispflow.rollup_apps_1h (account, bucket);

-- The whole network's heaviest sources, destinations and conversations of each hour (kept by
-- bytes or by flows), plus one remainder row per hour and kind with null addresses, so sums
-- stay exact.
create table ispflow.rollup_talkers_1h (
    bucket     timestamptz not null,
    kind       text not null check (kind in ('source', 'destination', 'conversation')),
    src_addr   inet,
    dst_addr   inet,
    bytes      bigint not null,
    packets    bigint not null,
    flows      bigint not null
);
select create_hypertable('ispflow.rollup_talkers_1h', 'bucket', chunk_time_interval => interval '30 days',
                         create_default_indexes => false);
create index rollup_talkers_1h_kind on ispflow.rollup_talkers_1h (kind, bucket);

create table ispflow.analytics_watermarks (
    name        text primary key,
    done_until  timestamptz not null,
    updated_at  timestamptz not null default now()
);
"""

DOWNGRADE = r"""
drop table if exists ispflow.rollup_traffic_5m, ispflow.rollup_network_5m, ispflow.rollup_interface_5m,
    ispflow.rollup_accounts_1h, ispflow.rollup_apps_1h, ispflow.rollup_talkers_1h,
    ispflow.analytics_watermarks cascade;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
