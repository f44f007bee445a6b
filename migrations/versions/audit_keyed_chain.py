"""The audit log's chain becomes keyed (HMAC) from the next entry on; only its owner may delete.

``ispflow.audit_chain`` records where the keyed chain starts (entries before keep their
SHA-256 links and are sealed by the first keyed one) and the oldest entry at the upgrade, so
``verify`` knows where an upgraded log legitimately starts. The guard now lets only a member
of the owner's role delete (retention); the app role has no DELETE privilege either.

Revision ID: audit_keyed_chain
Revises: 0001
"""
from alembic import op

revision = "audit_keyed_chain"
down_revision = "schema_post_nat"
branch_labels = None
depends_on = None

def _audit_log_guard(only_the_owner: bool) -> str:
    """The append-only guard: deletion only by retention (now also only by the owner's role)."""
    owner_check = ("and pg_has_role(current_user, (select relowner from pg_class where oid = tg_relid), 'USAGE')"
                   if only_the_owner else "")
    return rf"""
create or replace function ispflow.audit_log_guard() returns trigger language plpgsql as $$
begin
    if tg_op = 'DELETE' {owner_check}
       and coalesce(current_setting('ispflow.audit_retention_before', true), '') <> ''
       and old.at < current_setting('ispflow.audit_retention_before', true)::timestamptz then
        return old;
    end if;
    raise exception 'ispflow.audit_log is append-only (% refused)', tg_op
        using errcode = 'insufficient_privilege';
end $$;
"""


UPGRADE = r"""
create table ispflow.audit_chain (
    singleton    boolean primary key default true check (singleton),
    keyed_from   bigint not null,
    origin_id    bigint,
    origin_hash  text
);
insert into ispflow.audit_chain (keyed_from, origin_id, origin_hash)
select coalesce((select max(id) from ispflow.audit_log), 0) + 1, first.id, first.hash
from (select 1) one left join (select id, hash from ispflow.audit_log order by id limit 1) first on true;

create function ispflow.audit_chain_guard() returns trigger language plpgsql as $$
begin
    raise exception 'ispflow.audit_chain is written once, by its migration (% refused)', tg_op
        using errcode = 'insufficient_privilege';
end $$;
create trigger audit_chain_append_only before update or delete or truncate on ispflow.audit_chain
    for each statement execute function ispflow.audit_chain_guard();
"""

DOWNGRADE = r"""
drop table if exists ispflow.audit_chain;
drop function if exists ispflow.audit_chain_guard();
"""


def upgrade() -> None:
    op.execute(UPGRADE)
    op.execute(_audit_log_guard(only_the_owner=True))


def downgrade() -> None:
    op.execute(DOWNGRADE)
    op.execute(_audit_log_guard(only_the_owner=False))
