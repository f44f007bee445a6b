"""Flows keep the translation a NAT device reports inside the flow record.

MikroTik RouterOS (IPFIX 225/226, newer releases also 227/228) and Cisco ASA NSEL (225-228 or
40001-40004) put the post-NAT source and destination into each flow record. Four nullable
columns keep them; a partial index on the post-NAT source answers "who used public address X"
for outgoing flows without costing anything on flows that were not translated.

Revision ID: schema_post_nat
Revises: schema_one_holder
"""
from alembic import op

revision = "schema_post_nat"
down_revision = "schema_one_holder"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        alter table ispflow.flows
            add column post_nat_src_addr inet,
            add column post_nat_dst_addr inet,
            add column post_nat_src_port integer,
            add column post_nat_dst_port integer;
        create index flows_post_nat_src_addr on ispflow.flows (post_nat_src_addr, ts_start)
            where post_nat_src_addr is not null;
    """)


def downgrade() -> None:
    op.execute("""
        drop index if exists ispflow.flows_post_nat_src_addr;
        alter table ispflow.flows drop column post_nat_src_addr, drop column post_nat_dst_addr,
            drop column post_nat_src_port, drop column post_nat_dst_port;
    """)
