"""Initial schema: flows and NAT events hypertables, subscriber directory, exporters, routers,
settings, audit log, exports and the standalone panel's users.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Why these chunk intervals and indexes: docs/storage.md.
UPGRADE = r"""
create extension if not exists timescaledb;

create table ispflow.settings (
    key         text primary key,
    value       jsonb not null,
    updated_at  timestamptz not null default now()
);

create table ispflow.users (
    id             serial primary key,
    username       text not null unique,
    password_hash  text not null,
    role           text not null check (role in ('admin', 'technician', 'compliance', 'customer')),
    account        text,
    active         boolean not null default true,
    must_change_password boolean not null default false,
    created_at     timestamptz not null default now(),
    check (role <> 'customer' or account is not null)
);

create table ispflow.ip_assignments (
    id          bigserial primary key,
    account     text not null,
    service     text not null,
    prefix      cidr not null,
    valid_from  timestamptz not null,
    valid_to    timestamptz,
    source      text not null default 'import',
    check (valid_to is null or valid_to > valid_from),
    unique (prefix, valid_from)
);
create index ip_assignments_prefix on ispflow.ip_assignments using gist (prefix inet_ops);
create index ip_assignments_account on ispflow.ip_assignments (account);

create table ispflow.exporters (
    id               serial primary key,
    address          inet not null unique,
    name             text,
    netflow_version  smallint,
    first_seen       timestamptz not null default now(),
    last_seen        timestamptz,
    last_flow_at     timestamptz,
    packets          bigint not null default 0,
    flows            bigint not null default 0,
    lost_flows       bigint not null default 0,
    decode_errors    bigint not null default 0,
    clock_skew_s     double precision,
    sampling_rate    integer
);

create table ispflow.flows (
    ts_start       timestamptz not null,
    ts_end         timestamptz not null,
    exporter_id    integer not null,
    src_addr       inet not null,
    dst_addr       inet not null,
    src_port       integer not null default 0,
    dst_port       integer not null default 0,
    protocol       smallint not null,
    tcp_flags      smallint,
    bytes          bigint not null,
    packets        bigint not null,
    in_if          integer,
    out_if         integer,
    sampling_rate  integer not null default 1,
    account        text,
    service        text,
    direction      text check (direction in ('in', 'out')),
    status         text check (status in ('success', 'failure')),
    src_as         bigint,
    dst_as         bigint
);
select create_hypertable('ispflow.flows', 'ts_start',
                         chunk_time_interval => interval '1 day',
                         create_default_indexes => false);
create index flows_ts_start on ispflow.flows using brin (ts_start) with (pages_per_range = 32);
create index flows_src_addr on ispflow.flows (src_addr, ts_start);
create index flows_dst_addr on ispflow.flows (dst_addr, ts_start);

create table ispflow.nat_events (
    ts                timestamptz not null,
    ts_end            timestamptz,
    exporter_id       integer not null,
    event             smallint not null,
    protocol          smallint,
    private_addr      inet,
    private_port      integer,
    public_addr       inet,
    public_port       integer,
    port_block_start  integer,
    port_block_end    integer,
    dst_addr          inet,
    dst_port          integer,
    account           text,
    service           text
);
select create_hypertable('ispflow.nat_events', 'ts',
                         chunk_time_interval => interval '1 day',
                         create_default_indexes => false);
create index nat_events_public on ispflow.nat_events (public_addr, ts);
create index nat_events_private on ispflow.nat_events (private_addr, ts);

create table ispflow.collector_heartbeats (
    collector   text primary key,
    hostname    text not null,
    pid         integer not null,
    started_at  timestamptz not null,
    beat_at     timestamptz not null,
    counters    jsonb not null default '{}'
);

create table ispflow.routers (
    id                 serial primary key,
    name               text not null unique,
    vendor             text not null,
    host               text not null,
    port               integer,
    username           text not null,
    secret             bytea not null,
    use_tls            boolean not null default false,
    interfaces         text not null default 'all',
    netflow_version    text not null default '9' check (netflow_version in ('5', '9', 'ipfix')),
    collector          text,
    source_interface   text,
    timeout_s          double precision not null default 15 check (timeout_s > 0),
    os_version         text,
    created_at         timestamptz not null default now(),
    provisioned_at     timestamptz,
    provisioned_collector text,
    verified           boolean not null default false,
    verified_at        timestamptz,
    ntp_synced         boolean,
    ntp_detail         text,
    clock_skew_s       double precision,
    checked_at         timestamptz,
    last_error         text
);

create table ispflow.router_jobs (
    id           bigserial primary key,
    router_id    integer not null references ispflow.routers (id) on delete cascade,
    action       text not null,
    state        text not null default 'queued'
                 check (state in ('queued', 'running', 'finished', 'failed')),
    requested_by text,
    rq_job_id    text,
    log          text not null default '',
    progress     smallint not null default 0 check (progress between 0 and 100),
    message      text,
    created_at   timestamptz not null default now(),
    started_at   timestamptz,
    finished_at  timestamptz
);
create index router_jobs_router on ispflow.router_jobs (router_id, created_at desc);

create table ispflow.exports (
    id           bigserial primary key,
    requested_by text not null,
    role         text,
    case_ref     text not null,
    criteria     jsonb not null,
    state        text not null default 'queued'
                 check (state in ('queued', 'running', 'finished', 'failed', 'expired')),
    rq_job_id    text,
    row_count    bigint,
    rows_done    bigint not null default 0,
    sha256       text,
    path         text,
    message      text,
    created_at   timestamptz not null default now(),
    finished_at  timestamptz
);

create table ispflow.storage_samples (
    at           timestamptz not null,
    relation     text not null,
    total_bytes  bigint not null,
    row_estimate bigint,
    primary key (relation, at)
);

create table ispflow.audit_log (
    id             bigserial primary key,
    at             timestamptz not null default clock_timestamp(),
    actor          text not null,
    role           text,
    action         text not null,
    case_ref       text,
    criteria       jsonb not null default '{}',
    row_count      bigint,
    export_sha256  text,
    prev_hash      text not null,
    hash           text not null unique
);

-- The audit log is append-only: rows can be added, never changed. Deletion is allowed only
-- to the retention job, which announces itself with a transaction-local setting and may
-- remove only rows older than the audit retention period it states.
create function ispflow.audit_log_guard() returns trigger language plpgsql as $$
begin
    if tg_op = 'DELETE'
       and current_setting('ispflow.audit_retention_before', true) is not null
       and current_setting('ispflow.audit_retention_before', true) <> ''
       and old.at < current_setting('ispflow.audit_retention_before', true)::timestamptz then
        return old;
    end if;
    raise exception 'ispflow.audit_log is append-only (% refused)', tg_op
        using errcode = 'insufficient_privilege';
end $$;
create trigger audit_log_append_only before update or delete on ispflow.audit_log
    for each row execute function ispflow.audit_log_guard();
create trigger audit_log_no_truncate before truncate on ispflow.audit_log
    for each statement execute function ispflow.audit_log_guard();
"""

DOWNGRADE = r"""
drop table if exists ispflow.audit_log, ispflow.storage_samples, ispflow.exports,
    ispflow.router_jobs, ispflow.routers, ispflow.collector_heartbeats, ispflow.nat_events,
    ispflow.flows, ispflow.exporters, ispflow.ip_assignments, ispflow.users, ispflow.settings cascade;
drop function if exists ispflow.audit_log_guard();
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
