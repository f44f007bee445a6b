"""Router records and jobs in the database: credentials at rest, job logs, statuses, clock checks."""
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from .fakes.fixtures import ENCRYPTION_KEY, TIMEOUT_S
from ispflow.config import ConfigError, Settings
from ispflow.routers import actions, inventory, runs, status
from ispflow.routers.validation import InvalidRouter
from ispflow.routers.crypto import CredentialsUnreadable, decrypt
from ispflow.routers.models import Router, RouterJob
from ispflow.signals import router_provisioned

PASSWORD = "Tr0ub4dor&3-router"


@pytest.fixture
def db(db_engine):
    with Session(db_engine, expire_on_commit=False) as session:
        yield session


def add(db, settings, fake=None, **overrides):
    values = dict(name="edge-1", vendor="mikrotik", host="127.0.0.1", port=fake.port if fake else 8728,
                  username="admin", password=PASSWORD, collector="192.0.2.10:2055", timeout_s=TIMEOUT_S)
    values.update(overrides)
    router = inventory.add_router(db, settings, **values)
    db.commit()
    return router


def run(db, settings, router, action):
    job = runs.create_job(db, router, action, requested_by="tester")
    db.commit()
    done = runs.run_job(settings.DATABASE_URL, settings, job.id)
    db.expire_all()
    return done


def test_the_password_is_stored_encrypted(db, settings, db_engine):
    router = add(db, settings)
    with db_engine.connect() as conn:
        stored = conn.execute(sa.text("select secret from ispflow.routers where id = :id"), {"id": router.id}).scalar()
    assert PASSWORD.encode() not in bytes(stored)
    assert decrypt(settings, stored) == PASSWORD


def test_a_different_key_cannot_read_the_password_and_says_what_to_do(db, settings):
    router = add(db, settings)
    other = Settings.from_env({}, SECRET_KEY="another-secret")
    with pytest.raises(CredentialsUnreadable, match="enter the password again"):
        decrypt(other, router.secret)


def test_without_any_key_passwords_cannot_be_stored(db):
    with pytest.raises(ConfigError, match="ISPFLOW_ENCRYPTION_KEY"):
        add(db, Settings.from_env({}))


@pytest.mark.parametrize("overrides, field, message", [
    ({"name": "bad name!"}, "name", "letters, digits"),
    ({"host": "not a host"}, "host", "neither an IP address nor a host name"),
    ({"vendor": "juniper"}, "vendor", "Choose one of"),
    ({"collector": "collector.example:2055"}, "collector", "an IP address, not a host name"),
    ({"collector": "192.0.2.10:99999"}, "collector", "outside 1–65535"),
    ({"vendor": "cisco_ios", "interfaces": "all"}, "interfaces", "need the interfaces"),
    ({"vendor": "cisco_ios", "interfaces": "Gi0/0", "netflow_version": "ipfix"}, "netflow_version", "5 or 9 only"),
    ({"password": ""}, "password", "Enter the password"),
])
def test_bad_fields_are_named_with_a_reason(db, settings, overrides, field, message):
    with pytest.raises(InvalidRouter) as failure:
        add(db, settings, **overrides)
    assert failure.value.field == field
    assert message in str(failure.value)


def test_a_second_router_with_the_same_name_is_refused(db, settings):
    add(db, settings)
    with pytest.raises(InvalidRouter, match="exists already"):
        add(db, settings)


def test_updating_without_a_password_keeps_the_stored_one(db, settings):
    router = add(db, settings)
    inventory.update_router(db, settings, router, password="", interfaces="ether1")
    db.commit()
    assert decrypt(settings, router.secret) == PASSWORD
    assert router.interfaces == "ether1"


def test_provisioning_job_verifies_records_the_clock_and_announces_it(db, settings, mikrotik):
    fake = mikrotik(password=PASSWORD)
    router = add(db, settings, fake)
    heard = []
    receiver = lambda sender, **kw: heard.append((sender, kw))  # noqa: E731
    router_provisioned.connect(receiver)
    try:
        job = run(db, settings, router, "provision")
    finally:
        router_provisioned.disconnect(receiver)
    assert job.state == "finished" and job.progress == 100
    assert "verified by reading the configuration back" in job.message
    assert "/ip traffic-flow target add dst-address=192.0.2.10 port=2055 version=9" in job.log
    router = db.get(Router, router.id)
    assert router.verified and router.provisioned_at is not None
    assert router.ntp_synced is True and router.clock_skew_s is not None
    assert router.os_version == "7.12.1 (stable)"
    assert router.provisioned_collector == "192.0.2.10:2055"
    assert heard == [("edge-1", {"router": "edge-1", "vendor": "mikrotik"})]


def test_the_job_log_never_contains_the_password(db, settings, mikrotik):
    fake = mikrotik(password="something-else")
    router = add(db, settings, fake)
    job = run(db, settings, router, "provision")
    assert job.state == "failed"
    assert "refused the username or password" in job.message
    assert PASSWORD not in job.log and PASSWORD not in job.message


def test_a_refused_command_fails_the_job_saying_what_was_rolled_back_and_not_applied(db, settings, mikrotik):
    fake = mikrotik(password=PASSWORD)
    router = add(db, settings, fake, interfaces="ether1,ether9")
    job = run(db, settings, router, "provision")
    assert job.state == "failed"
    assert "Rolled back: /ip traffic-flow target add" in job.log
    assert "Not applied: /ip traffic-flow set enabled=yes interfaces=ether1,ether9" in job.log
    assert db.get(Router, router.id).last_error == job.message
    assert fake.targets == []


def test_reprovisioning_after_a_collector_change_updates_the_target(db, settings, mikrotik):
    fake = mikrotik(password=PASSWORD)
    router = add(db, settings, fake)
    run(db, settings, router, "provision")
    inventory.update_router(db, settings, db.get(Router, router.id), collector="192.0.2.77:4739")
    db.commit()
    job = run(db, settings, db.get(Router, router.id), "provision")
    assert job.state == "finished", job.message
    assert [(t["dst-address"], t["port"]) for t in fake.targets] == [("192.0.2.77", "4739")]


def test_without_a_collector_the_default_export_target_is_used(db, settings, mikrotik):
    fake = mikrotik(password=PASSWORD)
    router = add(db, settings, fake, collector="")
    job = run(db, Settings.from_env({}, DATABASE_URL=settings.DATABASE_URL, ENCRYPTION_KEY=ENCRYPTION_KEY,
                                    EXPORT_TARGET="198.51.100.5:2055"), router, "provision")
    assert job.state == "finished"
    assert fake.targets[0]["dst-address"] == "198.51.100.5"


def test_without_any_collector_the_job_fails_with_a_clear_sentence(db, settings, mikrotik):
    router = add(db, settings, mikrotik(password=PASSWORD), collector="")
    job = run(db, settings, router, "provision")
    assert job.state == "failed"
    assert "has no collector address and no export address is set" in job.message


def test_the_module_settings_export_address_comes_before_the_environment(db, settings, mikrotik):
    from ispflow import module_settings

    module_settings.save(db, module_settings.ModuleSettings(export_target="203.0.113.9:9995"))
    db.commit()
    fake = mikrotik(password=PASSWORD)
    router = add(db, settings, fake, collector="")
    job = run(db, Settings.from_env({}, DATABASE_URL=settings.DATABASE_URL, ENCRYPTION_KEY=ENCRYPTION_KEY,
                                    EXPORT_TARGET="198.51.100.5:2055"), router, "provision")
    assert job.state == "finished", job.message
    assert (fake.targets[0]["dst-address"], fake.targets[0]["port"]) == ("203.0.113.9", "9995")


def test_removal_job_unverifies_the_router(db, settings, mikrotik):
    fake = mikrotik(password=PASSWORD)
    router = add(db, settings, fake)
    run(db, settings, router, "provision")
    job = run(db, settings, db.get(Router, router.id), "remove")
    assert job.state == "finished"
    assert fake.targets == []
    assert db.get(Router, router.id).verified is False


def test_a_second_job_while_one_is_queued_is_refused(db, settings):
    router = add(db, settings)
    runs.create_job(db, router, "provision")
    db.commit()
    with pytest.raises(runs.JobRefused, match="already"):
        runs.create_job(db, router, "check")


@pytest.mark.parametrize("ntp, synced", [("synchronized", True), ("unsynchronized", False), ("disabled", False)])
def test_check_job_records_ntp_state(db, settings, mikrotik, ntp, synced):
    router = add(db, settings, mikrotik(password=PASSWORD, ntp=ntp))
    job = run(db, settings, router, "check")
    assert job.state == "finished"
    assert db.get(Router, router.id).ntp_synced is synced
    assert ("can be trusted as evidence" in job.message) is synced


def test_a_skewed_clock_is_not_evidence_grade_even_when_synchronised(db, settings, mikrotik):
    router = add(db, settings, mikrotik(password=PASSWORD, clock_offset_s=300))
    job = run(db, settings, router, "check")
    assert "NOT evidence-grade" in job.message


def test_periodic_clock_check_covers_every_router_and_survives_a_dead_one(db, settings, mikrotik, cisco):
    add(db, settings, mikrotik(password=PASSWORD, ntp="unsynchronized"), name="mt")
    add(db, settings, cisco("ios"), name="ios", vendor="cisco_ios", username="netops", interfaces="GigabitEthernet0/0",
        password="secret")
    dead = mikrotik(password=PASSWORD)
    dead.stop()
    add(db, settings, dead, name="dead")
    outcome = actions.check_all_clocks(settings.DATABASE_URL, settings)
    assert set(outcome) == {"mt", "ios", "dead"}
    assert outcome["dead"].startswith("check failed: Cannot reach")
    by_name = {r.name: r for r in db.execute(sa.select(Router)).scalars()}
    assert by_name["mt"].ntp_synced is False and by_name["ios"].ntp_synced is True
    assert by_name["dead"].ntp_synced is None and by_name["dead"].checked_at is not None


def test_exporting_means_flows_from_the_router_address_arrived_recently(db, settings, db_engine):
    add(db, settings, name="fresh", host="192.0.2.1")
    add(db, settings, name="stale", host="192.0.2.2")
    add(db, settings, name="silent", host="192.0.2.3")
    now = datetime.now(timezone.utc)
    with db_engine.begin() as conn:
        conn.execute(sa.text("insert into ispflow.exporters (address, last_flow_at) values "
                             "('192.0.2.1', :fresh), ('192.0.2.2', :stale)"),
                     {"fresh": now - timedelta(seconds=30), "stale": now - timedelta(hours=1)})
    statuses = {s.router.name: s.exporting for s in status.router_statuses(db)}
    assert statuses == {"fresh": True, "stale": False, "silent": False}


def test_the_preview_is_available_without_the_password(db, settings):
    router = add(db, settings)
    commands, problem = inventory.preview(router, Settings.from_env({}))  # no key: nothing decrypted
    assert problem is None
    assert commands[0] == "/ip traffic-flow target add dst-address=192.0.2.10 port=2055 version=9"


def test_run_job_marks_the_job_running_then_done(db, settings, mikrotik):
    router = add(db, settings, mikrotik(password=PASSWORD))
    job = run(db, settings, router, "check")
    row = db.get(RouterJob, job.id)
    assert row.started_at is not None and row.finished_at >= row.started_at


def test_changing_the_export_unverifies_the_router_but_renaming_does_not(db, settings, mikrotik):
    router = add(db, settings, mikrotik(password=PASSWORD))
    run(db, settings, router, "provision")
    router = db.get(Router, router.id)
    inventory.update_router(db, settings, router, name="edge-renamed")
    assert router.verified is True
    inventory.update_router(db, settings, router, netflow_version="5")
    assert router.verified is False


@pytest.mark.parametrize("change", [{"host": "192.0.2.99"}, {"port": 9999}, {"username": "someone-else"},
                                    {"use_tls": True}, {"vendor": "cisco_ios", "interfaces": "Gi0/0"}])
def test_the_stored_password_is_not_kept_for_a_new_destination(db, settings, change):
    router = add(db, settings)
    with pytest.raises(InvalidRouter) as failure:
        inventory.update_router(db, settings, router, password="", **change)
    assert failure.value.field == "password"
    assert "Enter the password again" in str(failure.value)
    db.rollback()
    assert db.get(Router, router.id).host == "127.0.0.1"


def test_a_new_destination_with_the_password_entered_again_is_saved(db, settings):
    router = add(db, settings)
    inventory.update_router(db, settings, router, password="entered-again", host="192.0.2.99")
    db.commit()
    assert router.host == "192.0.2.99" and decrypt(settings, router.secret) == "entered-again"
