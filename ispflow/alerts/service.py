"""Raising alerts: one alert per incident, then quiet while it lasts (the cool-down).

An incident that is still present when the rule is evaluated again only moves its alert's
``last_seen``; a new alert is raised when the same incident comes back after being absent for
longer than the rule's cool-down. Each new alert is stored, delivered and sent as the
``alert_raised`` signal in the process that evaluated the rule.
"""
from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from ..config import Settings
from ..database import engine_for
from ..signals import alert_raised
from .conditions import incidents
from .delivery import deliver, payload
from .rules import Rule, all_rules

log = logging.getLogger(__name__)


def evaluate_rule(engine, settings: Settings, rule: Rule, now: datetime) -> list[int]:
    """Evaluate one rule; the ids of the alerts it raised."""
    with engine.connect() as conn:
        present = incidents(conn, rule, now)
    raised = []
    for incident in present:
        with engine.begin() as conn:
            ongoing = conn.execute(sa.text("""
                update ispflow.alerts set last_seen = :now
                where id = (select id from ispflow.alerts where rule_id = :rule and incident = :key
                            and last_seen >= :since order by last_seen desc limit 1)
                returning id
            """), {"now": now, "rule": rule.id, "key": incident.key,
                   "since": now - timedelta(seconds=rule.cooldown_s)}).scalar()
            if ongoing is not None:
                continue
            alert_id = conn.execute(sa.text("""
                insert into ispflow.alerts (rule_id, incident, raised_at, last_seen, message, details)
                values (:rule, :key, :now, :now, :message, cast(:details as jsonb)) returning id
            """), {"rule": rule.id, "key": incident.key, "now": now, "message": incident.message,
                   "details": json.dumps(incident.details, default=str)}).scalar()
        raised.append(alert_id)
        _announce(engine, settings, rule, alert_id, incident, now)
    return raised


def _announce(engine, settings, rule, alert_id, incident, now) -> None:
    data = payload(rule, alert_id, incident.key, incident.message, incident.details, now)
    outcome = deliver(settings, rule, data)
    with engine.begin() as conn:
        conn.execute(sa.text("update ispflow.alerts set delivery = cast(:d as jsonb) where id = :id"),
                     {"d": json.dumps(outcome), "id": alert_id})
    alert_raised.send(rule.name, **data)


def evaluate_rules(settings: Settings | None = None, now: datetime | None = None) -> str:
    """Periodic job: evaluate every enabled rule; a failing rule is logged and the others still run."""
    from ..jobs import job_settings

    settings = settings or job_settings()
    now = now or datetime.now(timezone.utc)
    engine = engine_for(settings.DATABASE_URL)
    with engine.connect() as conn:
        rules = all_rules(conn, enabled_only=True)
    raised, failed = 0, []
    for rule in rules:
        try:
            raised += len(evaluate_rule(engine, settings, rule, now))
        except Exception as exc:  # noqa: BLE001 - one broken rule must not silence the others
            log.exception("alert rule %s failed", rule.name)
            failed.append(f"{rule.name}: {exc.__class__.__name__}")
    return f"{len(rules)} rule(s), {raised} alert(s) raised" + (f"; failed: {', '.join(failed)}" if failed else "")


def test_rule(settings: Settings, rule: Rule, now: datetime | None = None) -> dict:
    """Deliver a test message through the rule's channels (nothing stored); the outcome of each."""
    now = now or datetime.now(timezone.utc)
    data = payload(rule, None, "test", f"Test of alert rule {rule.name}: {rule.describe()}.", {"test": True}, now)
    outcome = deliver(settings, rule, data)
    alert_raised.send(rule.name, **data)
    return outcome


def history(conn, limit: int = 200, rule_id: int | None = None) -> list:
    return conn.execute(sa.text(f"""
        select a.*, r.name as rule, r.kind from ispflow.alerts a join ispflow.alert_rules r on r.id = a.rule_id
        {"where a.rule_id = :rule" if rule_id else ""} order by a.raised_at desc, a.id desc limit :limit
    """), {"limit": limit, "rule": rule_id}).all()
