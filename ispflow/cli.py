"""The ``ispflow`` console command: a Flask CLI group over the standalone app factory.

Every command calls the same functions as the panel; errors a user can fix end with one
sentence on stderr and exit status 2, never a traceback.
"""
from __future__ import annotations

import subprocess
import sys

import click
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext

from .config import ConfigError
from .extension import db


def _create_app():
    import secrets

    from .standalone import create_app

    # Commands sign no cookies, so they need no configured secret key.
    return create_app({"SECRET_KEY": secrets.token_hex(16)})


@click.group(cls=FlaskGroup, create_app=_create_app, add_version_option=False, load_dotenv=False)
def cli():
    """ispflow: NetFlow retention and traffic analysis for ISPs."""


def database_url() -> str:
    return current_app.config["ISPFLOW_DATABASE_URL"]


class Failure(click.ClickException):
    """A problem the user can fix: one sentence on stderr, exit status 2."""

    exit_code = 2

    def show(self, file=None):
        click.echo(f"ispflow: {self.format_message()}", err=True)


def fail(message: str):
    raise Failure(message)


# --- db -------------------------------------------------------------------------------------
@cli.group("db")
def db_group():
    """Create and upgrade the database schema."""


@db_group.command("upgrade")
@with_appcontext
def db_upgrade():
    """Create or upgrade the schema as the owner, and the app's role (idempotent).

    Creates the database, the extension and the role ISPFLOW_DATABASE_URL names when missing.
    """
    from .database import current_revision, upgrade
    from .extension import settings

    owner_url = settings().owner_database_url
    warning = upgrade(owner_url, app_url=database_url())
    if warning:
        click.echo(f"ispflow: warning: {warning}", err=True)
    click.echo(f"Database schema at revision {current_revision(owner_url)}.")


# --- users ----------------------------------------------------------------------------------
@cli.group("users")
def users_group():
    """Users of the standalone panel."""


@users_group.command("create")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(["admin", "technician", "compliance", "customer"]))
@click.option("--account", help="Subscriber account a customer may see.")
@with_appcontext
def users_create(name, role, account):
    """Create a user; the password is read from standard input."""
    from .standalone.users import create_user

    password = sys.stdin.readline().rstrip("\r\n")
    try:
        create_user(db.session, name, password, role, account)
    except ValueError as exc:
        fail(f"{exc}.")
    db.session.commit()
    click.echo(f"Created {role} {name}.")


@users_group.command("ensure-admin")
@click.option("--name", default="admin", show_default=True)
@with_appcontext
def users_ensure_admin(name):
    """Create the first admin with a one-time password, unless an admin exists."""
    from .standalone.users import ensure_admin

    password = ensure_admin(db.session, name)
    db.session.commit()
    if password is None:
        click.echo("An admin account exists already.")
    else:
        click.echo(f"Created admin '{name}' with one-time password: {password}")
        click.echo("It must be changed at the first login, within 24 hours.")


@users_group.command("reset-password")
@click.argument("name")
@with_appcontext
def users_reset_password(name):
    """Give a user a new one-time password (valid 24 hours); their open sessions end."""
    import sqlalchemy as sa

    from .standalone.users import User, issue_one_time_password

    user = db.session.execute(sa.select(User).where(User.username == name)).scalar_one_or_none()
    if user is None:
        fail(f"no user is named {name!r}.")
    password = issue_one_time_password(user)
    db.session.commit()
    click.echo(f"One-time password for '{name}': {password}")
    click.echo("It must be changed at the first login, within 24 hours.")


# --- subscribers ----------------------------------------------------------------------------
@cli.group("subscribers")
def subscribers_group():
    """The subscriber directory: who held which address when."""


def _cli_actor() -> str:
    from .search.commands import actor

    return actor()


@subscribers_group.command("import")
@click.argument("file", type=click.File("rb"))
@with_appcontext
def subscribers_import(file):
    """Import FILE.csv with header account,service,prefix,valid_from,valid_to (audited with its SHA-256)."""
    import hashlib
    import io

    from .subscribers import read_csv, record_change, save_assignments

    content = file.read()
    try:
        rows = read_csv(io.StringIO(content.decode("utf-8-sig")))
        count = save_assignments(db.session, rows)
    except UnicodeDecodeError:
        fail(f"{file.name}: not UTF-8 text.")
    except ValueError as exc:
        fail(f"{file.name}: {exc}.")
    record_change(db.session, actor=_cli_actor(), role=None, action="subscribers.import", rows=count,
                  sha256=hashlib.sha256(content).hexdigest(), file=file.name)
    db.session.commit()
    click.echo(f"Imported {count} assignments.")


@subscribers_group.command("sync")
@with_appcontext
def subscribers_sync():
    """Copy the host panel's subscriber directory (its assignments_loader) into ispflow (audited)."""
    from .extension import state
    from .subscribers import Assignment, record_change, replace_source, rows_sha256

    rows = state().extension.host_assignments()
    if rows is None:
        fail("this panel registers no assignments_loader; import a CSV file instead.")
    try:
        rows = [r if isinstance(r, Assignment) else Assignment.parse(**r) for r in rows]
        count = replace_source(db.session, rows, "host")
    except ValueError as exc:
        fail(f"the host panel's directory: {exc}.")
    record_change(db.session, actor=_cli_actor(), role=None, action="subscribers.sync", rows=count,
                  sha256=rows_sha256(rows), source="host")
    db.session.commit()
    click.echo(f"Synchronised {count} assignments from the host panel.")


@subscribers_group.command("who")
@click.option("--ip", "address", required=True, help="IPv4 or IPv6 address.")
@click.option("--at", "moment", required=True, help="ISO 8601 date-time (UTC unless an offset is given).")
@click.option("--case", "case_ref", help="Case reference or legal basis (audited).")
@with_appcontext
def subscribers_who(address, moment, case_ref):
    """Print the account and service that held ADDRESS at the given moment (audited)."""
    import ipaddress

    from .subscribers import parse_time, record_lookup, who

    try:
        ipaddress.ip_address(address)
        at = parse_time(moment, "--at")
    except ValueError as exc:
        fail(f"{exc}." if "--at" in str(exc) else f"{address!r} is not an IP address.")
    found = who(db.session, address, at)
    record_lookup(db.session, actor=_cli_actor(), role=None, address=address, at=at, found=found,
                  case_ref=(case_ref or "").strip() or None)
    db.session.commit()
    if found is None:
        click.echo(f"No subscriber held {address} at {at.isoformat()}.")
        sys.exit(1)
    click.echo(f"account={found.account} service={found.service} prefix={found.prefix}")


# --- the features' command groups, one line each ------------------------------------------
from .collector.cli import collector_command, exporters_group  # noqa: E402

cli.add_command(collector_command)
cli.add_command(exporters_group)
from .retention.commands import COMMANDS as _retention_commands  # noqa: E402  (worker, status, retention, storage)

for _command in _retention_commands:
    cli.add_command(_command)
from .search import commands as _search_commands  # noqa: E402  (search, who, audit verify)

cli.add_command(_search_commands.search)
cli.add_command(_search_commands.who)
cli.add_command(_search_commands.audit_group)
from .routers.cli import keys_group, routers_group  # noqa: E402

cli.add_command(routers_group)
cli.add_command(keys_group)
from .security.commands import findings as _findings_command  # noqa: E402

cli.add_command(_findings_command)
from .alerts.commands import alerts_group  # noqa: E402

cli.add_command(alerts_group)


# --- production -----------------------------------------------------------------------------
@cli.command("install-units")
@click.option("--dir", "target_dir", default="/etc/systemd/system", show_default=True,
              help="Where the unit files go.")
@click.option("--env-file", default="/etc/ispflow/ispflow.env", show_default=True,
              help="The ISPFLOW_* settings of the units; written from this environment if missing.")
@click.option("--user", default="ispflow", show_default=True, help="System user the units run as.")
@click.option("--panel-bind", default="127.0.0.1:5000", show_default=True, help="HOST:PORT gunicorn binds.")
@click.option("--no-user", is_flag=True, help="Do not create the user nor chown its directories.")
@click.option("--no-enable", is_flag=True, help="Write the units but do not enable or start them.")
def install_units(target_dir, env_file, user, panel_bind, no_user, no_enable):
    """Write systemd units for the collector, the worker and the panel (ispflow-*.service),
    enable and start them. (scripts/install-services.sh installs PostgreSQL and Redis.)"""
    from .config import Settings
    from .service_units import install

    try:
        install(target_dir, Settings.from_env(), env_file, user, panel_bind, create_user=not no_user,
                enable=not no_enable, log=click.echo)
    except (OSError, subprocess.CalledProcessError) as exc:
        fail(f"could not install the units ({exc}); run as root or pass --no-user and a writable --dir.")


def main():
    import sqlalchemy as sa

    from .database import DatabaseError, _unreachable

    try:
        cli.main(prog_name="ispflow")
    except ConfigError as exc:
        click.echo(f"ispflow: {exc}", err=True)
        sys.exit(2)
    except sa.exc.OperationalError as exc:
        from .config import Settings

        message = _unreachable(Settings.from_env().DATABASE_URL, exc.orig or exc)
        click.echo(f"ispflow: {DatabaseError(message)}", err=True)
        sys.exit(2)
