"""Security findings (per analysed hour) and alert rules with their history.

Revision ID: security_findings_alerts
Revises: collector_exporter_trust
Create Date: 2026-11-29
"""
from alembic import op

revision = "security_findings_alerts"
down_revision = "collector_exporter_trust"
branch_labels = None
depends_on = None

UPGRADE = r"""
-- Which hours the analysis has covered: a finding-free hour is known to be clean, not skipped.
create table ispflow.security_windows (
    window_start  timestamptz primary key,
    window_end    timestamptz not null,
    analysed_at   timestamptz not null default now(),
    findings      integer not null default 0,
    seconds       double precision
);

create table ispflow.security_findings (
    id            bigserial primary key,
    kind          text not null check (kind in ('scan', 'bruteforce', 'outbound', 'beacon', 'geography')),
    window_start  timestamptz not null references ispflow.security_windows (window_start) on delete cascade,
    window_end    timestamptz not null,
    subject       inet not null,
    peer          inet,
    port          integer,
    account       text,
    label         text not null default '',
    score         double precision not null,
    summary       text not null,
    evidence      jsonb not null default '{}',
    first_seen    timestamptz not null,
    last_seen     timestamptz not null
);
create index security_findings_window on ispflow.security_findings (window_start, kind);

create table ispflow.alert_rules (
    id            serial primary key,
    name          text not null unique,
    kind          text not null check (kind in ('subscriber_rate', 'interface_rate', 'finding',
                                                'exporter_silent', 'router_clock')),
    params        jsonb not null default '{}',
    cooldown_s    integer not null default 3600 check (cooldown_s >= 0),
    email         text not null default '',
    webhook       text not null default '',
    enabled       boolean not null default true,
    created_at    timestamptz not null default now()
);

-- One row per incident: raised once, then only its last_seen moves while it lasts.
create table ispflow.alerts (
    id            bigserial primary key,
    rule_id       integer not null references ispflow.alert_rules (id) on delete cascade,
    incident      text not null,
    raised_at     timestamptz not null default now(),
    last_seen     timestamptz not null default now(),
    message       text not null,
    details       jsonb not null default '{}',
    delivery      jsonb not null default '{}'
);
create index alerts_rule_incident on ispflow.alerts (rule_id, incident, last_seen desc);
create index alerts_raised on ispflow.alerts (raised_at desc);
"""

DOWNGRADE = r"""
drop table if exists ispflow.alerts, ispflow.alert_rules, ispflow.security_findings, ispflow.security_windows;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
