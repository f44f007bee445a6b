"""``ispflow alerts``: list rules and recent alerts, add, remove and test rules, evaluate now."""
from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext

from ..config import Settings
from ..database import engine_for
from ..alerts.rules import KINDS, PARAMETERS, RuleError, all_rules, delete_rule, get_rule, parse_rule, save_rule
from ..alerts.service import evaluate_rules, history, test_rule


def _settings() -> Settings:
    return Settings.from_flask(current_app.config)


def _fail(message: str):
    from .failure import fail

    fail(message)


@click.group("alerts")
def alerts_group():
    """Alert rules and the alerts they raised."""


@alerts_group.command("list")
@click.option("--limit", type=click.IntRange(1), default=20, show_default=True, help="Recent alerts shown.")
@with_appcontext
def alerts_list(limit):
    """The rules, then the most recent alerts."""
    with engine_for(_settings().DATABASE_URL).connect() as conn:
        rules = all_rules(conn)
        recent = history(conn, limit)
    for rule in rules:
        targets = ", ".join([*rule.email, *([rule.webhook] if rule.webhook else [])]) or "signal only"
        click.echo(f"{rule.name}{'' if rule.enabled else ' (disabled)'}: {rule.describe()}; "
                   f"cool-down {rule.cooldown_s // 60} min; to {targets}")
    if not rules:
        click.echo("No alert rules.")
    for alert in recent:
        click.echo(f"{alert.raised_at.isoformat(timespec='seconds')} {alert.rule}: {alert.message} "
                   f"(last seen {alert.last_seen.isoformat(timespec='seconds')})")


@alerts_group.command("add")
@click.argument("name")
@click.option("--kind", required=True, type=click.Choice(list(KINDS)))
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
              help=f"A parameter of the kind ({', '.join(PARAMETERS)}).")
@click.option("--cooldown", "cooldown_minutes", default="60", show_default=True, help="Minutes.")
@click.option("--email", default="", help="Recipients, comma-separated.")
@click.option("--webhook", default="", help="URL receiving a JSON POST.")
@with_appcontext
def alerts_add(name, kind, params, cooldown_minutes, email, webhook):
    """Add a rule (or replace the rule of that name)."""
    values = {"name": name, "kind": kind, "cooldown_minutes": cooldown_minutes, "email": email, "webhook": webhook}
    for item in params:
        key, sep, value = item.partition("=")
        if not sep or key not in KINDS[kind]:
            _fail(f"--param {item!r}: expected KEY=VALUE with KEY one of {', '.join(KINDS[kind])}.")
        values[key] = value
    try:
        rule = parse_rule(values)
    except RuleError as exc:
        _fail(exc.errors[next(iter(exc.errors))])
    with engine_for(_settings().DATABASE_URL).begin() as conn:
        save_rule(conn, rule)
    click.echo(f"Saved rule {rule.name}: {rule.describe()}.")


@alerts_group.command("remove")
@click.argument("name")
@with_appcontext
def alerts_remove(name):
    """Remove a rule and its alert history."""
    with engine_for(_settings().DATABASE_URL).begin() as conn:
        rule = get_rule(conn, name)
        if rule is None:
            _fail(f"there is no alert rule {name!r}.")
        delete_rule(conn, rule.id)
    click.echo(f"Removed rule {name}.")


@alerts_group.command("test")
@click.argument("name")
@with_appcontext
def alerts_test(name):
    """Send a test alert through the rule's e-mail and webhook; exit 1 if a channel failed."""
    settings = _settings()
    with engine_for(settings.DATABASE_URL).connect() as conn:
        rule = get_rule(conn, name)
    if rule is None:
        _fail(f"there is no alert rule {name!r}.")
    outcome = test_rule(settings, rule)
    for channel, result in outcome.items():
        click.echo(f"{channel}: {result}")
    if any(result.startswith("failed") for result in outcome.values()):
        raise SystemExit(1)


@alerts_group.command("run")
@with_appcontext
def alerts_run():
    """Evaluate every enabled rule now (what the periodic job does every minute)."""
    click.echo(evaluate_rules(_settings()))
