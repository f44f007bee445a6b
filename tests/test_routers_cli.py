"""``ispflow routers …`` as a user runs it: add, list, provision (and --dry-run), check, remove."""
import os
import re
import subprocess
import sys
from pathlib import Path

from .fakes.fixtures import ENCRYPTION_KEY, TIMEOUT_S
from ispflow.routers.cli import (
    routers_add, routers_check, routers_list, routers_provision, routers_remove, routers_repin,
)

ISPFLOW = str(Path(sys.executable).with_name("ispflow"))


def add(runner, fake, name="edge-1", *extra, password="secret"):
    args = [name, "--vendor", "mikrotik", "--host", "127.0.0.1", "--port", str(fake.port), "--username", "admin",
            "--collector", "192.0.2.10:2055", "--timeout", str(TIMEOUT_S), *extra]
    return runner.invoke(routers_add, args, input=password + "\n")


def test_add_reads_the_password_from_stdin_and_list_shows_the_router(runner, mikrotik):
    result = add(runner, mikrotik())
    assert result.exit_code == 0, result.output
    assert "Added router edge-1 (mikrotik at 127.0.0.1)." in result.output
    listing = runner.invoke(routers_list).output
    assert "edge-1" in listing and "mikrotik" in listing
    assert "secret" not in listing


def test_adding_from_the_command_line_is_audited_as_the_unix_user(runner, mikrotik, db_engine):
    import sqlalchemy as sa

    add(runner, mikrotik())
    with db_engine.connect() as conn:
        actor, action = conn.execute(sa.text("select actor, action from ispflow.audit_log")).one()
    assert actor.startswith("cli:") and action == "router.add"


def test_add_explains_a_bad_option_in_one_sentence(runner, mikrotik):
    result = add(runner, mikrotik(), "edge-2", "--interfaces", "all", "--collector", "collector:2055")
    assert result.exit_code == 2
    assert "--collector: 'collector:2055' is not ADDRESS:PORT (an IP address, not a host name)" in result.output


def test_add_refuses_cisco_without_interfaces(runner):
    result = runner.invoke(routers_add, ["c1", "--vendor", "cisco_ios", "--host", "192.0.2.1", "--username", "u"],
                           input="pw\n")
    assert result.exit_code == 2
    assert "--interfaces: Cisco IOS (classic NetFlow) routers need the interfaces to watch" in result.output


def test_dry_run_prints_the_commands_and_changes_nothing(runner, mikrotik):
    fake = mikrotik()
    add(runner, fake)
    result = runner.invoke(routers_provision, ["edge-1", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "/ip traffic-flow target add dst-address=192.0.2.10 port=2055 version=9" in result.output
    assert fake.targets == []


def test_provision_then_list_shows_it_verified(runner, mikrotik):
    fake = mikrotik()
    add(runner, fake)
    result = runner.invoke(routers_provision, ["edge-1"])
    assert result.exit_code == 0, result.output
    assert "exports to 192.0.2.10:2055; verified" in result.output
    assert len(fake.targets) == 1
    line = [ln for ln in runner.invoke(routers_list).output.splitlines() if ln.startswith("edge-1")][0]
    assert re.search(r" yes +synced +[+-]\d+\.\ds +no(  PLAIN API)?$", line), line  # verified, NTP, skew, not exporting yet


def test_provision_failure_is_exit_status_2_with_the_reason(runner, mikrotik):
    add(runner, mikrotik(), password="wrong-password")
    result = runner.invoke(routers_provision, ["edge-1"])
    assert result.exit_code == 2
    assert "refused the username or password" in result.output


def test_an_unknown_router_name_is_explained(runner):
    result = runner.invoke(routers_check, ["nope"])
    assert result.exit_code == 2
    assert "no router is named 'nope'" in result.output


def test_check_exits_0_when_synchronised(runner, mikrotik):
    add(runner, mikrotik(ntp="synchronized"))
    result = runner.invoke(routers_check, ["edge-1"])
    assert result.exit_code == 0, result.output
    assert "can be trusted as evidence" in result.output


def test_check_exits_1_when_not_synchronised(runner, mikrotik):
    add(runner, mikrotik(ntp="unsynchronized"))
    result = runner.invoke(routers_check, ["edge-1"])
    assert result.exit_code == 1
    assert "NOT evidence-grade" in result.output


def test_remove_takes_the_export_off(runner, mikrotik):
    fake = mikrotik()
    add(runner, fake)
    runner.invoke(routers_provision, ["edge-1"])
    result = runner.invoke(routers_remove, ["edge-1"])
    assert result.exit_code == 0, result.output
    assert "no longer exports" in result.output
    assert fake.targets == []


def test_the_console_command_checks_a_cisco_router(database_url, db_engine, cisco):
    fake = cisco("xe", ntp="disabled")
    env = {**os.environ, "ISPFLOW_DATABASE_URL": database_url, "ISPFLOW_ENCRYPTION_KEY": ENCRYPTION_KEY}
    added = subprocess.run(
        [ISPFLOW, "routers", "add", "xe-1", "--vendor", "cisco_xe", "--host", "127.0.0.1", "--port", str(fake.port),
         "--username", "netops", "--interfaces", "GigabitEthernet0/0", "--timeout", "2"],
        input="secret\n", capture_output=True, text=True, env=env, timeout=60)
    assert added.returncode == 0, added.stderr
    checked = subprocess.run([ISPFLOW, "routers", "check", "xe-1"], capture_output=True, text=True, env=env, timeout=60)
    assert checked.returncode == 1, checked.stderr
    assert "NTP is not enabled" in checked.stdout


def test_add_accepts_every_vendor_of_the_driver_registry(runner):
    from ispflow.routers.base import DRIVERS, register
    from ispflow.routers.mikrotik import MikroTikDriver

    @register
    class Registered(MikroTikDriver):
        vendor = "registered_late"
        label = "Registered after the CLI was imported"

    try:
        result = runner.invoke(routers_add, ["late-1", "--vendor", "registered_late", "--host", "192.0.2.1",
                                             "--username", "u"], input="a-password\n")
    finally:
        DRIVERS.pop("registered_late")
    assert "Invalid value for '--vendor'" not in result.output
    assert result.exit_code == 0, result.output


def test_list_warns_about_plain_routeros_api(runner, mikrotik):
    add(runner, mikrotik(), "edge-plain")
    add(runner, mikrotik(tls=True), "edge-ssl", "--api-ssl")
    result = runner.invoke(routers_list)
    assert "PLAIN API" in [ln for ln in result.output.splitlines() if ln.startswith("edge-plain")][0]
    assert "PLAIN API" not in [ln for ln in result.output.splitlines() if ln.startswith("edge-ssl")][0]
    assert "send the password in clear text" in result.output


def test_repin_forgets_the_pinned_key_and_is_audited(runner, app, cisco):
    import sqlalchemy as sa

    from ispflow.extension import db

    fake = cisco("ios")
    runner.invoke(routers_add, ["c1", "--vendor", "cisco_ios", "--host", "127.0.0.1", "--port", str(fake.port),
                                "--username", "netops", "--interfaces", "GigabitEthernet0/0",
                                "--collector", "192.0.2.10:2055", "--timeout", str(TIMEOUT_S)], input="secret\n")
    assert runner.invoke(routers_check, ["c1"]).exit_code in (0, 1)
    with app.app_context():
        assert db.session.execute(sa.text("select pinned_key from ispflow.routers")).scalar() == fake.key_text
    result = runner.invoke(routers_repin, ["c1"])
    assert result.exit_code == 0, result.output
    assert "ssh-rsa SHA256:" in result.output
    with app.app_context():
        assert db.session.execute(sa.text("select pinned_key from ispflow.routers")).scalar() is None
        assert db.session.execute(sa.text("select count(*) from ispflow.audit_log where action = 'router.repin'")).scalar() == 1
