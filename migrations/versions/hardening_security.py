"""Security hardening: pinned router keys, revocable sessions and expiring one-time passwords.

Revision ID: hardening_security
Revises: security_findings_alerts
Create Date: 2026-11-29
"""
from alembic import op

revision = "hardening_security"
down_revision = "security_findings_alerts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    alter table ispflow.routers
        add column pinned_key text,
        add column pinned_at timestamptz;
    alter table ispflow.users
        add column session_generation integer not null default 0,
        add column password_expires_at timestamptz;
    """)


def downgrade() -> None:
    op.execute("""
    alter table ispflow.users drop column password_expires_at, drop column session_generation;
    alter table ispflow.routers drop column pinned_at, drop column pinned_key;
    """)
