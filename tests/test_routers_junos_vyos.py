"""The Junos (inline J-Flow) and VyOS/EdgeOS (flow-accounting) drivers, through the real netmiko
client, against SSH fakes of both CLIs: candidate configuration, commit, verify, remove, clock."""
from datetime import timedelta

import pytest

from ispflow.routers.base import CommandRefused, RouterSpec, Unsupported, driver_for
from ispflow.routers.junos import parse_current_time
from ispflow.routers.vyos import parse_show_date

from .fakes.fixtures import TIMEOUT_S

VENDORS = {"junos": "juniper_junos", "vyos": "vyos"}
INTERFACE = {"junos": "ge-0/0/1", "vyos": "eth0"}


def spec(fake, **overrides):
    values = dict(host="127.0.0.1", port=fake.port, username="netops", password="secret",
                  collector_host="192.0.2.10", collector_port=2055, interfaces=(INTERFACE[fake.platform],),
                  netflow_version="ipfix", timeout=TIMEOUT_S)
    values.update(overrides)
    return RouterSpec(**values)


def driver(fake, **overrides):
    return driver_for(VENDORS[fake.platform])(spec(fake, **overrides))


def provision(fake, **overrides):
    with driver(fake, **overrides) as d:
        return d.apply(), d.verify()


@pytest.mark.parametrize("platform", VENDORS)
def test_first_provisioning_is_committed_and_verified(setcli, platform):
    fake = setcli(platform)
    result, verification = provision(fake)
    assert verification.ok, verification.problems
    assert result.applied[-1] == "commit" and fake.commits == 1


def test_junos_gets_inline_jflow_with_an_ipfix_template(setcli):
    fake = setcli("junos")
    provision(fake)
    running = fake.running
    assert "set services flow-monitoring version-ipfix template ispflow-ipv4 ipv4-template" in running
    assert ("set forwarding-options sampling instance ispflow family inet output flow-server 192.0.2.10 "
            "version-ipfix template ispflow-ipv4") in running
    assert "set forwarding-options sampling instance ispflow family inet output flow-server 192.0.2.10 port 2055" \
        in running
    assert "set chassis fpc 0 sampling-instance ispflow" in running
    assert "set interfaces ge-0/0/1 unit 0 family inet sampling input" in running


def test_vyos_gets_flow_accounting_and_saves_it(setcli):
    fake = setcli("vyos")
    provision(fake, netflow_version="9")
    assert fake.running[1:] == [
        "set system flow-accounting interface eth0", "set system flow-accounting netflow version 9",
        "set system flow-accounting netflow server 192.0.2.10 port 2055",
        "set system flow-accounting netflow timeout max-active-life 60",
        "set system flow-accounting netflow timeout flow-generic 15"]
    assert fake.saved == 1


@pytest.mark.parametrize("platform", VENDORS)
def test_provisioning_twice_commits_nothing_the_second_time(setcli, platform):
    fake = setcli(platform)
    provision(fake)
    before = list(fake.running)
    result, verification = provision(fake)
    assert result.unchanged and verification.ok
    assert fake.running == before and fake.commits == 1


@pytest.mark.parametrize("platform", VENDORS)
def test_a_changed_collector_replaces_the_old_one(setcli, platform):
    fake = setcli(platform)
    provision(fake)
    result, verification = provision(fake, collector_host="192.0.2.20", collector_port=9995)
    assert verification.ok
    assert not any("192.0.2.10" in line for line in fake.running)
    with driver(fake) as d:
        assert d.read_export().destinations == [("192.0.2.20", 9995, "ipfix")]


@pytest.mark.parametrize("platform", VENDORS)
def test_the_preview_lists_the_lines_and_the_commit_without_connecting(setcli, platform):
    fake = setcli(platform)
    lines = driver(fake).plan(connected=False)
    assert lines[-1] == "commit" and all(line.startswith("set ") for line in lines[:-1])
    assert fake.lines_typed == []


@pytest.mark.parametrize("platform", VENDORS)
def test_a_refused_commit_leaves_the_running_configuration_untouched(setcli, platform):
    fake = setcli(platform, refuse_commit="the forwarding plane has no room for another instance")
    before = list(fake.running)
    with driver(fake) as d, pytest.raises(CommandRefused) as refused:
        d.apply()
    assert "Nothing was committed" in str(refused.value)
    assert refused.value.applied == [] and refused.value.not_applied[-1] == "commit"
    assert fake.running == before
    with driver(fake) as d:  # the candidate was thrown away: a new session starts clean
        assert d.apply().applied and d.verify().ok


def test_a_refused_line_is_named_and_nothing_is_committed(setcli):
    fake = setcli("vyos")
    with driver(fake, interfaces=("eth9",)) as d, pytest.raises(CommandRefused) as refused:
        d.apply()
    assert "eth9" in str(refused.value) and fake.commits == 0 and fake.running == fake.running[:1]


@pytest.mark.parametrize("platform", VENDORS)
def test_removal_takes_the_export_off(setcli, platform):
    fake = setcli(platform)
    provision(fake)
    with driver(fake) as d:
        result = d.remove()
        assert result.applied[-1] == "commit"
        export = d.read_export()
    assert not export.enabled and export.destinations == []
    assert fake.running == ["set system ntp server 192.0.2.123"]


def test_junos_refuses_netflow_v5(setcli):
    with pytest.raises(Unsupported, match="9 or ipfix"):
        driver(setcli("junos"), netflow_version="5").plan(connected=False)


def test_every_driver_needs_interfaces(setcli):
    for platform in VENDORS:
        with pytest.raises(Unsupported, match="interfaces"):
            driver(setcli(platform), interfaces=()).plan(connected=False)


@pytest.mark.parametrize("platform, version", [("junos", "21.4R3-S3.4"), ("vyos", "VyOS 1.4.0")])
def test_the_os_version_is_read_at_login(setcli, platform, version):
    with driver(setcli(platform)) as d:
        assert d.test_connection() == version


@pytest.mark.parametrize("platform", VENDORS)
@pytest.mark.parametrize("ntp, enabled, synced", [("synchronized", True, True), ("unsynchronized", True, False),
                                                   ("disabled", False, False)])
def test_the_ntp_state_is_read(setcli, platform, ntp, enabled, synced):
    with driver(setcli(platform, ntp=ntp)) as d:
        clock = d.read_clock()
    assert (clock.ntp_enabled, clock.synchronized) == (enabled, synced)


@pytest.mark.parametrize("platform", VENDORS)
def test_the_clock_skew_is_measured(setcli, platform):
    with driver(setcli(platform, clock_offset_s=-300)) as d:
        clock = d.read_clock()
    assert -302 < clock.skew_s < -298


def test_clock_texts_of_other_zones_give_no_time():
    assert parse_current_time("Current time: 2026-11-22 10:15:30 CET") is None
    assert parse_show_date("Sun Nov 22 10:15:30 CET 2026") is None
    assert parse_show_date("Sun Nov  2 10:15:30 UTC 2026").day == 2
    assert parse_current_time("Current time: 2026-11-22 10:15:30 UTC") - parse_current_time(
        "Current time: 2026-11-22 10:15:00 UTC") == timedelta(seconds=30)


@pytest.mark.parametrize("platform", VENDORS)
def test_the_provisioning_job_configures_and_the_clock_check_reads_the_router(setcli, platform, settings,
                                                                               db_engine):
    from sqlalchemy.orm import Session

    from ispflow.routers import actions, inventory, runs
    from ispflow.routers.validation import InvalidRouter

    fake = setcli(platform)
    with Session(db_engine, expire_on_commit=False) as db:
        router = inventory.add_router(db, settings, name="edge-1", vendor=VENDORS[platform], host="127.0.0.1",
                                    port=fake.port, username="netops", password="secret",
                                    interfaces=INTERFACE[platform], netflow_version="9",
                                    collector="192.0.2.10:2055", timeout_s=TIMEOUT_S)
        job = runs.create_job(db, router, "provision", requested_by="tester")
        db.commit()
    done = runs.run_job(settings.DATABASE_URL, settings, job.id)
    assert done.state == "finished", done.message
    assert any("192.0.2.10" in line for line in fake.running)
    assert actions.check_all_clocks(settings.DATABASE_URL, settings)["edge-1"].endswith(
        "its flow times can be trusted as evidence.")


@pytest.mark.parametrize("vendor, example", [("juniper_junos", "ge-0/0/1"), ("vyos", "eth0")])
def test_adding_a_router_without_interfaces_is_refused_with_an_example(settings, db_engine, vendor, example):
    from sqlalchemy.orm import Session

    from ispflow.routers import actions, inventory, runs
    from ispflow.routers.validation import InvalidRouter

    with Session(db_engine) as db, pytest.raises(InvalidRouter) as refused:
        inventory.add_router(db, settings, name="edge-1", vendor=vendor, host="192.0.2.1", username="netops",
                           password="secret", interfaces="all", collector="192.0.2.10:2055")
    assert refused.value.field == "interfaces" and example in str(refused.value)
