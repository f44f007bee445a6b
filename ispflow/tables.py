"""The definition of ispflow's tables: the one place their columns and indexes are written.

Tables that code reads and writes without an ORM class (flows, NAT events, exporters, the
settings row, heartbeats, exports, storage samples, the audit log) are SQLAlchemy Core
``Table`` objects here; the ORM classes (``subscribers.IPAssignment``, ``routers.models``,
``standalone.users.User``) declare theirs on the same metadata. Column lists elsewhere (the
collector's COPY, search pages, the test rows) are derived from these objects.

Migrations remain the history of how a database reached this shape; ``tests/test_schema.py``
checks with Alembic's autogenerate comparison that a migrated database matches ``metadata()``
exactly, so a new column goes into a migration and here, or the test says what differs.
"""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import CIDR, INET, JSONB

from .database import Base

TIMESTAMP = sa.DateTime(timezone=True)
_meta = Base.metadata

exporters = sa.Table(
    "exporters", _meta,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("address", INET, nullable=False, unique=True),
    sa.Column("name", sa.Text),
    sa.Column("netflow_version", sa.SmallInteger),
    sa.Column("first_seen", TIMESTAMP, nullable=False, server_default=sa.func.now()),
    sa.Column("last_seen", TIMESTAMP),
    sa.Column("last_flow_at", TIMESTAMP),
    sa.Column("packets", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("flows", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("lost_flows", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("decode_errors", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("clock_skew_s", sa.Float),
    sa.Column("sampling_rate", sa.Integer),
    # Flows are stored only from trusted exporters and provisioned routers (collector/trust.py).
    sa.Column("trusted", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("trusted_by", sa.Text),
    sa.Column("trusted_at", TIMESTAMP),
    sa.Column("dropped", JSONB, nullable=False, server_default=sa.text("'{}'")),  # reason -> count
)

# A hypertable on ts_start (1-day chunks); why these indexes: docs/storage.md.
flows = sa.Table(
    "flows", _meta,
    sa.Column("ts_start", TIMESTAMP, nullable=False),
    sa.Column("ts_end", TIMESTAMP, nullable=False),
    sa.Column("exporter_id", sa.Integer, nullable=False),
    sa.Column("src_addr", INET, nullable=False),
    sa.Column("dst_addr", INET, nullable=False),
    sa.Column("src_port", sa.Integer, nullable=False, server_default="0"),
    sa.Column("dst_port", sa.Integer, nullable=False, server_default="0"),
    sa.Column("protocol", sa.SmallInteger, nullable=False),
    sa.Column("tcp_flags", sa.SmallInteger),
    sa.Column("bytes", sa.BigInteger, nullable=False),
    sa.Column("packets", sa.BigInteger, nullable=False),
    sa.Column("in_if", sa.Integer),
    sa.Column("out_if", sa.Integer),
    sa.Column("sampling_rate", sa.Integer, nullable=False, server_default="1"),
    sa.Column("direction", sa.Text),
    sa.Column("src_as", sa.BigInteger),
    sa.Column("dst_as", sa.BigInteger),
    # What a NAT device reports inside the record (MikroTik, Cisco ASA NSEL): null where untranslated.
    sa.Column("post_nat_src_addr", INET),
    sa.Column("post_nat_dst_addr", INET),
    sa.Column("post_nat_src_port", sa.Integer),
    sa.Column("post_nat_dst_port", sa.Integer),
    # The subscriber account and service that held the subscriber-side address (holders.id).
    sa.Column("holder", sa.Integer),
    sa.CheckConstraint("direction in ('in', 'out')"),
    sa.Index("flows_ts_start", "ts_start", postgresql_using="brin",
             postgresql_with={"pages_per_range": 32, "autosummarize": "on"}),
    sa.Index("flows_src_addr", "src_addr"),  # address alone: deduplicated btrees (docs/storage.md)
    sa.Index("flows_dst_addr", "dst_addr"),
    sa.Index("flows_post_nat_src_addr", "post_nat_src_addr", "ts_start",
             postgresql_where=sa.text("post_nat_src_addr is not null")),
)

# Every (account, service) pair a flow was ever stamped with; flows.holder points here. Evidence
# like the flows: the app role adds pairs, nobody changes one (database_privileges).
holders = sa.Table(
    "holders", _meta,
    sa.Column("id", sa.Integer, sa.Identity(always=True), primary_key=True),
    sa.Column("account", sa.Text, nullable=False),
    sa.Column("service", sa.Text),
    sa.UniqueConstraint("account", "service", postgresql_nulls_not_distinct=True),
)

# The view every reader of flows with their attribution reads (migration perf_holder_key):
# the flow's columns, its holder's account and service, the TCP connection status derived
# from protocol and flags, and the row's address (rid, for page cursors). Not part of
# metadata(): Alembic compares tables.
flow_records = sa.Table(
    "flow_records", sa.MetaData(schema=_meta.schema),
    *(sa.Column(c.name, c.type) for c in list(flows.columns)[:14]),   # ts_start … sampling_rate
    sa.Column("account", sa.Text), sa.Column("service", sa.Text), sa.Column("direction", sa.Text),
    sa.Column("status", sa.Text),
    *(sa.Column(c.name, c.type) for c in list(flows.columns)[15:]),   # src_as … holder
    sa.Column("rid", sa.Text),
)
assert [c.name for c in list(flows.columns)[13:16]] == ["sampling_rate", "direction", "src_as"]

# A hypertable on ts (1-day chunks).
nat_events = sa.Table(
    "nat_events", _meta,
    sa.Column("ts", TIMESTAMP, nullable=False),
    sa.Column("ts_end", TIMESTAMP),
    sa.Column("exporter_id", sa.Integer, nullable=False),
    sa.Column("event", sa.SmallInteger, nullable=False),
    sa.Column("protocol", sa.SmallInteger),
    sa.Column("private_addr", INET),
    sa.Column("private_port", sa.Integer),
    sa.Column("public_addr", INET),
    sa.Column("public_port", sa.Integer),
    sa.Column("port_block_start", sa.Integer),
    sa.Column("port_block_end", sa.Integer),
    sa.Column("dst_addr", INET),
    sa.Column("dst_port", sa.Integer),
    sa.Column("account", sa.Text),
    sa.Column("service", sa.Text),
    sa.Index("nat_events_public", "public_addr", "ts"),
    sa.Index("nat_events_private", "private_addr", "ts"),
)


# Roll-ups (hypertables on bucket; what each holds and how flows are split: docs/storage.md).
def _rollup(name: str, *columns, indexes=()) -> sa.Table:
    return sa.Table(
        name, _meta,
        sa.Column("bucket", TIMESTAMP, nullable=False),
        *columns,
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("packets", sa.BigInteger, nullable=False),
        sa.Column("flows", sa.BigInteger, nullable=False),
        *indexes,
    )


_DIRECTION = "direction in ('in', 'out')"
rollup_traffic_5m = _rollup(
    "rollup_traffic_5m",
    sa.Column("address", INET, nullable=False), sa.Column("account", sa.Text), sa.Column("service", sa.Text),
    sa.Column("direction", sa.Text, nullable=False), sa.CheckConstraint(_DIRECTION),
    indexes=(sa.Index("rollup_traffic_5m_account", "account", "bucket", postgresql_include=["direction", "bytes"]),
             sa.Index("rollup_traffic_5m_address", "address", "bucket",
                      postgresql_include=["account", "direction", "bytes"]),
             sa.Index("rollup_traffic_5m_bucket", "bucket", postgresql_using="brin")))
rollup_network_5m = _rollup(
    "rollup_network_5m",
    sa.Column("service", sa.Text), sa.Column("direction", sa.Text), sa.CheckConstraint(_DIRECTION),
    indexes=(sa.Index("rollup_network_5m_bucket", "bucket"),))
rollup_interface_5m = _rollup(
    "rollup_interface_5m",
    sa.Column("exporter_id", sa.Integer, nullable=False), sa.Column("if_index", sa.Integer, nullable=False),
    sa.Column("direction", sa.Text, nullable=False), sa.CheckConstraint(_DIRECTION),
    indexes=(sa.Index("rollup_interface_5m_port", "exporter_id", "if_index", "bucket",
                      postgresql_include=["direction", "bytes"]),))
rollup_accounts_1h = _rollup(
    "rollup_accounts_1h",
    sa.Column("account", sa.Text, nullable=False), sa.Column("service", sa.Text),
    sa.Column("direction", sa.Text, nullable=False), sa.CheckConstraint(_DIRECTION),
    indexes=(sa.Index("rollup_accounts_1h_bucket", "bucket"),))
rollup_apps_1h = _rollup(
    "rollup_apps_1h",
    sa.Column("account", sa.Text), sa.Column("protocol", sa.SmallInteger, nullable=False),
    sa.Column("port", sa.Integer, nullable=False),
    indexes=(sa.Index("rollup_apps_1h_account", "account", "bucket"),))
rollup_talkers_1h = _rollup(
    "rollup_talkers_1h",
    sa.Column("kind", sa.Text, nullable=False), sa.Column("src_addr", INET), sa.Column("dst_addr", INET),
    sa.CheckConstraint("kind in ('source', 'destination', 'conversation')"),
    indexes=(sa.Index("rollup_talkers_1h_kind", "kind", "bucket"),))

# Each hour's heaviest talkers of every account (rollups.TOP_ACCOUNT by bytes and by flows) and
# one remainder row: an account's month of top talkers is read from here, not from raw flows.
# An account-hour of at most rollups.SHALLOW flows has only its remainder rows, flagged ``raw``:
# its talkers are read from its raw flows, which are fewer than talker rows would be.
rollup_account_talkers_1h = sa.Table(
    "rollup_account_talkers_1h", _meta,
    sa.Column("bucket", TIMESTAMP, nullable=False),
    sa.Column("account", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False), sa.Column("src_addr", INET), sa.Column("dst_addr", INET),
    sa.Column("bytes", sa.BigInteger, nullable=False),
    sa.Column("packets", sa.BigInteger, nullable=False),
    sa.Column("flows", sa.BigInteger, nullable=False),
    sa.Column("raw", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.CheckConstraint("kind in ('source', 'destination', 'conversation')"),
    sa.Index("rollup_account_talkers_1h_account", "account", "kind", "bucket"),
    sa.Index("rollup_account_talkers_1h_raw", "account", "bucket", postgresql_where=sa.text("raw")))
# The subscriber-side traffic per /24 (IPv4) or /48 (IPv6): graphs of prefixes that span many
# subscribers read a few blocks' rows instead of every address's.
rollup_prefix_5m = _rollup(
    "rollup_prefix_5m",
    sa.Column("prefix", CIDR, nullable=False),
    sa.Column("direction", sa.Text, nullable=False), sa.CheckConstraint(_DIRECTION),
    indexes=(sa.Index("rollup_prefix_5m_prefix", "prefix", "bucket", postgresql_include=["direction", "bytes"]),))

analytics_watermarks = sa.Table(
    "analytics_watermarks", _meta,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("done_until", TIMESTAMP, nullable=False),
    sa.Column("updated_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
)

HYPERTABLES = {"flows": "ts_start", "nat_events": "ts", **{
    table.name: "bucket" for table in (rollup_traffic_5m, rollup_network_5m, rollup_interface_5m,
                                       rollup_accounts_1h, rollup_apps_1h, rollup_talkers_1h,
                                       rollup_account_talkers_1h, rollup_prefix_5m)}}

settings = sa.Table(
    "settings", _meta,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", JSONB, nullable=False),
    sa.Column("updated_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
)

collector_heartbeats = sa.Table(
    "collector_heartbeats", _meta,
    sa.Column("collector", sa.Text, primary_key=True),
    sa.Column("hostname", sa.Text, nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("started_at", TIMESTAMP, nullable=False),
    sa.Column("beat_at", TIMESTAMP, nullable=False),
    sa.Column("counters", JSONB, nullable=False, server_default="{}"),
)

exports = sa.Table(
    "exports", _meta,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("requested_by", sa.Text, nullable=False),
    sa.Column("role", sa.Text),
    sa.Column("case_ref", sa.Text, nullable=False),
    sa.Column("criteria", JSONB, nullable=False),
    sa.Column("state", sa.Text, nullable=False, server_default="queued"),
    sa.Column("rq_job_id", sa.Text),
    sa.Column("row_count", sa.BigInteger),
    sa.Column("rows_done", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("sha256", sa.Text),
    sa.Column("path", sa.Text),
    sa.Column("message", sa.Text),
    sa.Column("created_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
    sa.Column("finished_at", TIMESTAMP),
    sa.CheckConstraint("state in ('queued', 'running', 'finished', 'failed', 'expired')"),
)

storage_samples = sa.Table(
    "storage_samples", _meta,
    sa.Column("at", TIMESTAMP, primary_key=True),
    sa.Column("relation", sa.Text, primary_key=True),
    sa.Column("total_bytes", sa.BigInteger, nullable=False),
    sa.Column("row_estimate", sa.BigInteger),
)

# Closed chunks of flows rewritten in subscriber order (ispflow.retention.chunk_order); owner-written.
ordered_chunks = sa.Table(
    "ordered_chunks", _meta,
    sa.Column("chunk", sa.Text, primary_key=True),
    sa.Column("range_start", TIMESTAMP, nullable=False),
    sa.Column("ordered_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
    sa.Column("row_count", sa.BigInteger, nullable=False),
    sa.Column("seconds", sa.Float(53), nullable=False),
)

# Append-only: a trigger (migration 0001) refuses UPDATE, TRUNCATE and early DELETE.
audit_log = sa.Table(
    "audit_log", _meta,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("at", TIMESTAMP, nullable=False, server_default=sa.func.clock_timestamp()),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("role", sa.Text),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("case_ref", sa.Text),
    sa.Column("criteria", JSONB, nullable=False, server_default="{}"),
    sa.Column("row_count", sa.BigInteger),
    sa.Column("export_sha256", sa.Text),
    sa.Column("prev_hash", sa.Text, nullable=False),
    sa.Column("hash", sa.Text, nullable=False, unique=True),
)

# Security findings (migration security_findings_alerts): every analysed hour, and what it showed.
security_windows = sa.Table(
    "security_windows", _meta,
    sa.Column("window_start", TIMESTAMP, primary_key=True),
    sa.Column("window_end", TIMESTAMP, nullable=False),
    sa.Column("analysed_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
    sa.Column("findings", sa.Integer, nullable=False, server_default="0"),
    sa.Column("seconds", sa.Float),
)

security_findings = sa.Table(
    "security_findings", _meta,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("window_start", TIMESTAMP, sa.ForeignKey("ispflow.security_windows.window_start", ondelete="CASCADE"),
              nullable=False),
    sa.Column("window_end", TIMESTAMP, nullable=False),
    sa.Column("subject", INET, nullable=False),
    sa.Column("peer", INET),
    sa.Column("port", sa.Integer),
    sa.Column("account", sa.Text),
    sa.Column("label", sa.Text, nullable=False, server_default=""),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("evidence", JSONB, nullable=False, server_default="{}"),
    sa.Column("first_seen", TIMESTAMP, nullable=False),
    sa.Column("last_seen", TIMESTAMP, nullable=False),
    sa.CheckConstraint("kind in ('scan', 'bruteforce', 'outbound', 'beacon', 'geography')"),
    sa.Index("security_findings_window", "window_start", "kind"),
)

alert_rules = sa.Table(
    "alert_rules", _meta,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.Text, nullable=False, unique=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("params", JSONB, nullable=False, server_default="{}"),
    sa.Column("cooldown_s", sa.Integer, nullable=False, server_default="3600"),
    sa.Column("email", sa.Text, nullable=False, server_default=""),
    sa.Column("webhook", sa.Text, nullable=False, server_default=""),
    sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
    sa.CheckConstraint("kind in ('subscriber_rate', 'interface_rate', 'finding', 'exporter_silent', "
                       "'router_clock')"),
    sa.CheckConstraint("cooldown_s >= 0"),
)

# One row per incident: raised once, then only last_seen moves while it lasts.
alerts = sa.Table(
    "alerts", _meta,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("rule_id", sa.Integer, sa.ForeignKey("ispflow.alert_rules.id", ondelete="CASCADE"), nullable=False),
    sa.Column("incident", sa.Text, nullable=False),
    sa.Column("raised_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
    sa.Column("last_seen", TIMESTAMP, nullable=False, server_default=sa.func.now()),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("details", JSONB, nullable=False, server_default="{}"),
    sa.Column("delivery", JSONB, nullable=False, server_default="{}"),
    sa.Index("alerts_rule_incident", "rule_id", "incident", sa.text("last_seen desc")),
    sa.Index("alerts_raised", sa.text("raised_at desc")),
)


# Where the keyed (HMAC) chain starts and the log's oldest entry at that upgrade; written once
# by its migration, a trigger refuses every later change.
audit_chain = sa.Table(
    "audit_chain", _meta,
    sa.Column("singleton", sa.Boolean, primary_key=True, server_default=sa.true()),
    sa.Column("keyed_from", sa.BigInteger, nullable=False),
    sa.Column("origin_id", sa.BigInteger),
    sa.Column("origin_hash", sa.Text),
    sa.CheckConstraint("singleton"),
)

def names(table: sa.Table) -> tuple[str, ...]:
    """The table's column names in their order in the database."""
    return tuple(column.name for column in table.columns)


def metadata() -> sa.MetaData:
    """Every ispflow table: the Core tables above and the ORM classes' tables."""
    from . import subscribers  # noqa: F401  (registers ip_assignments)
    from .routers import models  # noqa: F401
    from .standalone import users  # noqa: F401

    return _meta
