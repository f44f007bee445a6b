"""Alert rules: what to watch, validated in one place for the panel's form and the CLI.

A rule has a kind, parameters of that kind, a cool-down and where to deliver (e-mail
addresses, a webhook URL). Everything arrives as text and leaves typed, or raises
``RuleError`` naming each bad field.
"""
from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from urllib.parse import urlparse

import sqlalchemy as sa

from ..security.detect import KINDS as FINDING_KINDS

# kind -> {parameter: (type, required, default)}; what each kind watches is in conditions.py
KINDS = {
    "subscriber_rate": {"threshold_mbps": (float, True, None), "minutes": (int, True, None),
                        "direction": (str, False, "both"), "account": (str, False, "")},
    "interface_rate": {"exporter": (str, True, None), "ifindex": (int, True, None), "direction": (str, False, "in"),
                       "threshold_mbps": (float, True, None), "minutes": (int, True, None)},
    "finding": {"finding_kind": (str, False, ""), "min_score": (float, False, 1.0)},
    "exporter_silent": {"minutes": (int, False, 15)},
    "router_clock": {"max_skew_s": (float, False, 2.0)},
}
KIND_LABELS = {"subscriber_rate": "A subscriber's rate above a threshold",
               "interface_rate": "An interface's rate above a threshold",
               "finding": "A security finding", "exporter_silent": "An exporter gone silent",
               "router_clock": "A router clock out of sync"}
PARAMETERS = tuple(dict.fromkeys(p for params in KINDS.values() for p in params))


class RuleError(ValueError):
    """Fields of a rule are wrong; ``errors`` maps field name to a sentence."""

    def __init__(self, errors: dict[str, str]):
        super().__init__(" ".join(errors.values()))
        self.errors = errors


@dataclass(frozen=True)
class Rule:
    name: str
    kind: str
    params: dict = field(default_factory=dict)
    cooldown_s: int = 3600
    email: tuple[str, ...] = ()
    webhook: str = ""
    enabled: bool = True
    id: int | None = None

    def describe(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in self.params.items() if v not in ("", None))
        return f"{KIND_LABELS[self.kind]}" + (f" ({shown})" if shown else "")


def parse_rule(values: dict) -> Rule:
    """A Rule from text fields: name, kind, cooldown_minutes, email, webhook and the kind's parameters."""
    errors = {}
    name = (values.get("name") or "").strip()
    if not name or len(name) > 100 or any(c.isspace() for c in name):
        errors["name"] = "A name of 1 to 100 characters without spaces is required."
    kind = (values.get("kind") or "").strip()
    params = {}
    if kind not in KINDS:
        errors["kind"] = f"The kind must be one of {', '.join(KINDS)}."
    else:
        for param, (kind_type, required, default) in KINDS[kind].items():
            text = str(values.get(param) if values.get(param) is not None else "").strip()
            if not text:
                if required:
                    errors[param] = f"{param.replace('_', ' ').capitalize()} is required for this kind."
                params[param] = default
                continue
            try:
                params[param] = _typed(param, kind_type, text)
            except ValueError as exc:
                errors[param] = str(exc)
    cooldown = str(values.get("cooldown_minutes") or "60").strip()
    if not cooldown.isdigit() or not 0 <= int(cooldown) <= 7 * 24 * 60:
        errors["cooldown_minutes"] = "The cool-down is a whole number of minutes from 0 to 10080."
    emails = tuple(e for e in (values.get("email") or "").replace(";", ",").replace(",", " ").split() if e)
    for address in emails:
        local, at, domain = address.partition("@")
        if not (local and at and "." in domain):
            errors["email"] = f"'{address}' is not an e-mail address."
    webhook = (values.get("webhook") or "").strip()
    if webhook:
        parsed = urlparse(webhook)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            errors["webhook"] = "The webhook must be an http:// or https:// URL."
    if errors:
        raise RuleError(errors)
    return Rule(name, kind, params, int(cooldown) * 60, emails, webhook)


def _typed(param: str, kind_type, text: str):
    if param == "direction":
        if text not in ("in", "out", "both"):
            raise ValueError("The direction is in, out or both.")
        return text
    if param == "finding_kind":
        if text not in FINDING_KINDS:
            raise ValueError(f"The finding kind is one of {', '.join(FINDING_KINDS)}.")
        return text
    if param == "exporter":
        try:
            return str(ipaddress.ip_address(text))
        except ValueError:
            raise ValueError(f"'{text}' is not the IP address of an exporter.") from None
    if kind_type is str:
        return text
    try:
        number = kind_type(text)
    except ValueError:
        raise ValueError(f"'{text}' is not a {'whole ' if kind_type is int else ''}number.") from None
    if number <= 0 and param != "min_score" or number < 0:
        raise ValueError(f"{param.replace('_', ' ').capitalize()} must be greater than 0.")
    return number


def _rule(row) -> Rule:
    return Rule(row.name, row.kind, dict(row.params), row.cooldown_s, tuple(row.email.split()) if row.email else (),
                row.webhook, row.enabled, row.id)


def all_rules(conn, enabled_only: bool = False) -> list[Rule]:
    rows = conn.execute(sa.text("select * from ispflow.alert_rules" + (" where enabled" if enabled_only else "")
                                + " order by name")).all()
    return [_rule(r) for r in rows]


def get_rule(conn, name: str) -> Rule | None:
    row = conn.execute(sa.text("select * from ispflow.alert_rules where name = :name"), {"name": name}).one_or_none()
    return _rule(row) if row else None


def save_rule(conn, rule: Rule) -> Rule:
    """Insert the rule, or replace the one of the same name. The caller commits."""
    new_id = conn.execute(sa.text("""
        insert into ispflow.alert_rules (name, kind, params, cooldown_s, email, webhook, enabled)
        values (:name, :kind, cast(:params as jsonb), :cooldown_s, :email, :webhook, :enabled)
        on conflict (name) do update set kind = excluded.kind, params = excluded.params,
            cooldown_s = excluded.cooldown_s, email = excluded.email, webhook = excluded.webhook,
            enabled = excluded.enabled
        returning id
    """), {"name": rule.name, "kind": rule.kind, "params": json.dumps(rule.params), "cooldown_s": rule.cooldown_s,
           "email": " ".join(rule.email), "webhook": rule.webhook, "enabled": rule.enabled}).scalar()
    return Rule(rule.name, rule.kind, rule.params, rule.cooldown_s, rule.email, rule.webhook, rule.enabled, new_id)


def delete_rule(conn, rule_id: int) -> bool:
    """Remove a rule and its alert history. The caller commits."""
    return conn.execute(sa.text("delete from ispflow.alert_rules where id = :id"), {"id": rule_id}).rowcount > 0
