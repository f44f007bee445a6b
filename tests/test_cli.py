"""The ``ispflow`` console command, run as a user runs it."""
import os
import subprocess
import sys
from pathlib import Path

ISPFLOW = str(Path(sys.executable).with_name("ispflow"))


def run(*args, stdin="", **env):
    return subprocess.run(
        [ISPFLOW, *args], input=stdin, capture_output=True, text=True, timeout=120,
        env={**os.environ, **env},
    )


def test_help_lists_the_commands():
    out = run("--help").stdout
    for command in ("db", "users", "subscribers"):
        assert f"  {command} " in out
    assert "who" in run("subscribers", "--help").stdout
    assert "import" in run("subscribers", "--help").stdout


def test_db_upgrade_is_idempotent(database_url):
    first = run("db", "upgrade", ISPFLOW_DATABASE_URL=database_url)
    second = run("db", "upgrade", ISPFLOW_DATABASE_URL=database_url)
    assert first.returncode == second.returncode == 0
    from alembic.script import ScriptDirectory

    from ispflow.database import alembic_config

    head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
    assert f"revision {head}" in second.stdout


def test_unreachable_database_is_one_sentence_not_a_traceback():
    result = run("db", "upgrade", ISPFLOW_DATABASE_URL="postgresql://postgres@127.0.0.1:1/ispflow")
    assert result.returncode == 2
    assert result.stderr.startswith("ispflow: Cannot connect to the database")
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_users_create_reads_the_password_from_stdin(database_url, db_engine):
    env = {"ISPFLOW_DATABASE_URL": database_url}
    created = run("users", "create", "olga", "--role", "compliance", stdin="a long password\n", **env)
    assert created.returncode == 0, created.stderr
    again = run("users", "create", "olga", "--role", "compliance", stdin="a long password\n", **env)
    assert again.returncode == 2
    assert "user 'olga' exists already" in again.stderr


def test_users_create_refuses_a_short_password(database_url, db_engine):
    result = run("users", "create", "pat", "--role", "admin", stdin="short\n", ISPFLOW_DATABASE_URL=database_url)
    assert result.returncode == 2
    assert "at least 10 characters" in result.stderr
