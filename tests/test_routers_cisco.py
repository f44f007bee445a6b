"""The Cisco drivers, through the real netmiko client, against an SSH fake of IOS, IOS-XE and NX-OS."""
from datetime import timedelta

import pytest

from .fakes.fixtures import TIMEOUT_S
from ispflow.routers.base import (
    AuthenticationFailed, CommandRefused, RouterSpec, Timeout, Unreachable, Unsupported, driver_for,
)
from ispflow.routers.cisco import parse_show_clock

PLATFORMS = {"ios": "cisco_ios", "xe": "cisco_xe", "nxos": "cisco_nxos"}
INTERFACE = {"ios": "GigabitEthernet0/0", "xe": "GigabitEthernet0/0", "nxos": "Ethernet1/1"}


def spec(fake, **overrides):
    values = dict(host="127.0.0.1", port=fake.port, username="netops", password="secret",
                  collector_host="192.0.2.10", collector_port=2055, interfaces=(INTERFACE[fake.platform],),
                  timeout=TIMEOUT_S)
    values.update(overrides)
    return RouterSpec(**values)


def driver(fake, **overrides):
    return driver_for(PLATFORMS[fake.platform])(spec(fake, **overrides))


def provision(fake, **overrides):
    with driver(fake, **overrides) as d:
        return d.apply(), d.verify()


@pytest.mark.parametrize("platform", PLATFORMS)
def test_first_provisioning_is_verified_and_saved(cisco, platform):
    fake = cisco(platform)
    result, verification = provision(fake)
    assert verification.ok, verification.problems
    assert result.applied
    assert fake.saved == 1


def test_ios_gets_classic_netflow(cisco):
    fake = cisco("ios")
    provision(fake)
    config = fake.running_config()
    assert "ip flow-export destination 192.0.2.10 2055" in config
    assert "ip flow-export version 9" in config
    assert "interface GigabitEthernet0/0\n no shutdown\n ip flow ingress" in config


def test_ios_xe_gets_flexible_netflow_with_the_chosen_protocol(cisco):
    fake = cisco("xe")
    provision(fake, netflow_version="ipfix")
    assert fake.block("flow exporter ISPFLOW-EXPORTER")[1] == [
        "destination 192.0.2.10", "transport udp 2055", "export-protocol ipfix"]
    assert "ip flow monitor ISPFLOW-MONITOR input" in fake.block("interface GigabitEthernet0/0")[1]


def test_nx_os_enables_the_netflow_feature_first(cisco):
    fake = cisco("nxos")
    provision(fake)
    heads = [line for line, _ in fake.config]
    assert heads.index("feature netflow") < heads.index("flow exporter ISPFLOW-EXPORTER")
    assert "version 9" in fake.block("flow exporter ISPFLOW-EXPORTER")[1]


@pytest.mark.parametrize("platform", PLATFORMS)
def test_provisioning_twice_sends_nothing_the_second_time(cisco, platform):
    fake = cisco(platform)
    provision(fake)
    config_before = fake.running_config()
    result, verification = provision(fake)
    assert result.unchanged and verification.ok
    assert fake.running_config() == config_before
    assert fake.saved == 1


def test_a_changed_collector_replaces_the_ios_destination(cisco):
    fake = cisco("ios")
    provision(fake)
    _, verification = provision(fake, collector_host="192.0.2.99", previous_collector=("192.0.2.10", 2055))
    assert verification.ok
    destinations = [line for line, _ in fake.config if line.startswith("ip flow-export destination")]
    assert destinations == ["ip flow-export destination 192.0.2.99 2055"]


def test_a_changed_collector_updates_the_flexible_netflow_exporter(cisco):
    fake = cisco("xe")
    provision(fake)
    provision(fake, collector_port=9995, previous_collector=("192.0.2.10", 2055))
    exporters = [line for line, _ in fake.config if line.startswith("flow exporter")]
    assert exporters == ["flow exporter ISPFLOW-EXPORTER"]
    assert "transport udp 9995" in fake.block("flow exporter ISPFLOW-EXPORTER")[1]


@pytest.mark.parametrize("platform", PLATFORMS)
def test_removal_leaves_no_export_behind(cisco, platform):
    fake = cisco(platform)
    provision(fake)
    with driver(fake) as d:
        d.remove()
        config = d.read_export()
    assert not config.enabled and config.destinations == [] and config.interfaces == ()
    assert "ISPFLOW" not in fake.running_config()
    assert fake.saved == 2


def test_nothing_listening_is_unreachable(cisco):
    fake = cisco("ios")
    fake.stop()
    with pytest.raises(Unreachable, match="Cannot reach SSH at 127.0.0.1"):
        provision(fake)


def test_wrong_password_is_an_authentication_failure(cisco):
    fake = cisco("ios")
    with pytest.raises(AuthenticationFailed, match="refused the username or password"):
        provision(fake, password="wrong-password")


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_command_refused_half_way_is_rolled_back_and_nothing_is_saved(cisco, platform):
    fake = cisco(platform)
    before = fake.running_config()
    missing = "Ethernet1/9" if platform == "nxos" else "GigabitEthernet0/9"
    with pytest.raises(CommandRefused) as failure:
        provision(fake, interfaces=(INTERFACE[platform], missing))
    message = str(failure.value)
    assert f"refused `interface {missing}`" in message
    assert "Invalid" in message
    assert "Nothing was left applied and the saved configuration was not touched" in message
    assert failure.value.not_applied[0] == f"interface {missing}"
    assert failure.value.rolled_back
    assert fake.running_config() == before
    assert fake.saved == 0


def test_a_refusal_inside_a_block_undoes_the_block(cisco):
    fake = cisco("xe")
    fake.config.append(["flow exporter ISPFLOW-EXPORTER", ["destination 198.51.100.1", "transport udp 2055"]])
    with pytest.raises(CommandRefused, match="refused `source Loopback99`"):
        provision(fake, source_interface="Loopback99")
    assert sorted(fake.block("flow exporter ISPFLOW-EXPORTER")[1]) == ["destination 198.51.100.1", "transport udp 2055"]
    assert fake.block("flow record ISPFLOW-RECORD") is None


def test_ios_classic_netflow_cannot_export_ipfix(cisco):
    fake = cisco("ios")
    with pytest.raises(Unsupported, match="version 5 or 9"):
        provision(fake, netflow_version="ipfix")
    assert fake.saved == 0


def test_cisco_needs_named_interfaces(cisco):
    fake = cisco("xe")
    with pytest.raises(Unsupported, match="list of interfaces"):
        provision(fake, interfaces=())


def test_a_router_that_stops_answering_times_out_saying_what_was_applied(cisco):
    fake = cisco("ios")
    fake.hang_after = 14  # connection set-up, show version, show running-config, conf t and one line
    with pytest.raises(Timeout) as failure:
        provision(fake, timeout=0.5)
    assert "stopped answering while sending `ip flow-export destination 192.0.2.10 2055`" in str(failure.value)
    assert failure.value.applied == ["ip flow-export version 9"]
    assert failure.value.not_applied[0] == "ip flow-export destination 192.0.2.10 2055"
    assert fake.saved == 0


def test_a_router_that_hangs_after_login_times_out(cisco):
    fake = cisco("xe")
    fake.hang_after = 8
    with pytest.raises(Timeout, match="stopped answering while running `show version`"):
        provision(fake, timeout=0.5)


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("ntp, synced", [("synchronized", True), ("unsynchronized", False), ("disabled", False)])
def test_ntp_state_is_read_on_every_platform(cisco, platform, ntp, synced):
    fake = cisco(platform, ntp=ntp)
    with driver(fake) as d:
        clock = d.read_clock()
    assert clock.synchronized is synced
    assert clock.ntp_enabled is (ntp != "disabled")
    assert abs(clock.skew_s) < 5


def test_clock_skew_honours_the_configured_time_zone(cisco):
    fake = cisco("xe", timezone_config=("CET", 1), clock_offset_s=-90)
    with driver(fake) as d:
        clock = d.read_clock()
    assert -95 < clock.skew_s < -85


def test_show_clock_flags_and_zones_are_parsed():
    zones = {"UTC": timedelta(0)}
    assert parse_show_clock("*10:15:30.123 UTC Sun Nov 22 2026", zones).isoformat() == "2026-11-22T10:15:30.123000+00:00"
    assert parse_show_clock(".10:15:30 UTC Sun Nov 22 2026", zones) is not None
    assert parse_show_clock("10:15:30.123 PST Sun Nov 22 2026", zones) is None


@pytest.mark.parametrize("platform", PLATFORMS)
def test_offline_plan_lists_the_full_configuration(platform):
    d = driver_for(PLATFORMS[platform])(RouterSpec(
        host="h", username="u", password="", collector_host="192.0.2.10", collector_port=2055,
        interfaces=(INTERFACE[platform],)))
    plan = d.plan(connected=False)
    assert f"interface {INTERFACE[platform]}" in plan
    assert any("192.0.2.10" in line for line in plan)
