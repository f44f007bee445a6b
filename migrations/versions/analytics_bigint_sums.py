"""A bigint sum for the roll-up job.

PostgreSQL's ``sum(bigint)`` keeps a 128-bit state per group and returns ``numeric``, which
the job's sorts and further sums then carry; ``ispflow.sum_bigint`` adds in a plain
``bigint`` (an error, never a wrong total, past 9.2 × 10^18) and made the job's
aggregations faster (docs/benchmarks.md, "Traffic analytics").

Revision ID: analytics_bigint_sums
Revises: analytics_tiers
"""
from alembic import op

revision = "analytics_bigint_sums"
down_revision = "analytics_tiers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("create aggregate ispflow.sum_bigint(bigint) "
               "(sfunc = int8pl, stype = bigint, combinefunc = int8pl, parallel = safe)")


def downgrade() -> None:
    op.execute("drop aggregate if exists ispflow.sum_bigint(bigint)")
