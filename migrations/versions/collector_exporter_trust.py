"""Exporter trust and drop counters; notifications that wake running collectors.

``exporters.trusted``: flows and NAT events are stored only from trusted exporters (and from
provisioned routers). Exporters that already sent flows before this revision stay trusted, so
an upgrade does not stop a working installation; an admin can untrust them.
``exporters.dropped``: counts by reason (untrusted packets, refused templates, addressless
records, ...), a JSON object so that a new reason needs no migration.
Statement triggers ``pg_notify('ispflow_collector', 'directory' | 'exporters')`` when the
subscriber directory, the module settings, exporter trust or the routers change; collectors
LISTEN and reload within a second instead of at their next periodic refresh.

Revision ID: collector_exporter_trust
Revises: audit_keyed_chain
"""
from alembic import op

revision = "collector_exporter_trust"
down_revision = "audit_keyed_chain"
branch_labels = None
depends_on = None

UPGRADE = r"""
alter table ispflow.exporters
    add column trusted     boolean not null default false,
    add column trusted_by  text,
    add column trusted_at  timestamptz,
    add column dropped     jsonb not null default '{}';
update ispflow.exporters set trusted = true, trusted_by = 'upgrade (sent flows before trust existed)',
    trusted_at = now() where flows > 0;

create function ispflow.notify_collector() returns trigger language plpgsql as $$
begin
    perform pg_notify('ispflow_collector', tg_argv[0]);
    return null;
end $$;

create trigger ip_assignments_notify after insert or update or delete or truncate on ispflow.ip_assignments
    for each statement execute function ispflow.notify_collector('directory');
create trigger settings_notify after insert or update or delete or truncate on ispflow.settings
    for each statement execute function ispflow.notify_collector('directory');
create trigger exporters_trust_notify after insert or delete or update of trusted on ispflow.exporters
    for each statement execute function ispflow.notify_collector('exporters');
create trigger routers_notify after insert or delete or update of host, provisioned_at on ispflow.routers
    for each statement execute function ispflow.notify_collector('exporters');
"""

DOWNGRADE = r"""
drop trigger if exists routers_notify on ispflow.routers;
drop trigger if exists exporters_trust_notify on ispflow.exporters;
drop trigger if exists settings_notify on ispflow.settings;
drop trigger if exists ip_assignments_notify on ispflow.ip_assignments;
drop function if exists ispflow.notify_collector();
alter table ispflow.exporters drop column dropped, drop column trusted_at, drop column trusted_by,
    drop column trusted;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
