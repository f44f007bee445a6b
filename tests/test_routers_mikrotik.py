"""The MikroTik driver, through the real routeros-api client, against a RouterOS API fake."""
import pytest

from .fakes.fixtures import TIMEOUT_S
from ispflow.routers.base import (
    AuthenticationFailed, CommandRefused, RouterSpec, Timeout, Unreachable, Unsupported, driver_for,
)
from ispflow.routers.mikrotik import duration_seconds, parse_clock

V7, V6_LATE, V6_OLD, V7_OLD_CLOCK = "7.12.1 (stable)", "6.49.10 (long-term)", "6.40.9 (bugfix)", "7.8 (stable)"


def spec(fake, **overrides):
    values = dict(host="127.0.0.1", port=fake.port, username="admin", password="secret",
                  collector_host="192.0.2.10", collector_port=2055, timeout=TIMEOUT_S)
    values.update(overrides)
    return RouterSpec(**values)


def provision(fake, **overrides):
    with driver_for("mikrotik")(spec(fake, **overrides)) as driver:
        result = driver.apply()
        return result, driver.verify()


def test_first_provisioning_enables_traffic_flow_and_adds_one_target(mikrotik):
    fake = mikrotik(version=V7)
    result, verification = provision(fake)
    assert verification.ok
    assert fake.traffic_flow["enabled"] == "yes"
    assert fake.traffic_flow["interfaces"] == "all"
    assert duration_seconds(fake.traffic_flow["active-flow-timeout"]) == 60
    assert [(t["dst-address"], t["port"], t["version"]) for t in fake.targets] == [("192.0.2.10", "2055", "9")]
    assert "/ip traffic-flow target add dst-address=192.0.2.10 port=2055 version=9" in result.applied


def test_provisioning_twice_changes_nothing_the_second_time(mikrotik):
    fake = mikrotik(version=V7)
    provision(fake)
    sent_before = len([c for c in fake.commands if not c[0].endswith("/print")])
    result, verification = provision(fake)
    assert result.unchanged and verification.ok
    assert len(fake.targets) == 1
    assert len([c for c in fake.commands if not c[0].endswith("/print")]) == sent_before + 1  # the login only


def test_a_changed_collector_updates_the_existing_target(mikrotik):
    fake = mikrotik(version=V7)
    provision(fake)
    first_id = fake.targets[0][".id"]
    result, verification = provision(fake, collector_host="192.0.2.99", collector_port=9995,
                                     previous_collector=("192.0.2.10", 2055))
    assert verification.ok
    assert [(t[".id"], t["dst-address"], t["port"]) for t in fake.targets] == [(first_id, "192.0.2.99", "9995")]


def test_duplicate_targets_for_our_collector_are_reduced_to_one(mikrotik):
    fake = mikrotik(version=V7)
    for _ in range(2):
        fake.targets.append({".id": f"*{fake._next_id}", "dst-address": "192.0.2.10", "port": "2055",
                             "version": "9", "disabled": "no"})
        fake._next_id += 1
    _, verification = provision(fake)
    assert verification.ok
    assert len(fake.targets) == 1


def test_other_targets_of_the_router_are_left_alone(mikrotik):
    fake = mikrotik(version=V7)
    fake.targets.append({".id": "*99", "dst-address": "198.51.100.7", "port": "2055", "version": "5", "disabled": "no"})
    provision(fake)
    assert {t["dst-address"] for t in fake.targets} == {"198.51.100.7", "192.0.2.10"}


def test_chosen_interfaces_and_ipfix_on_routeros_7(mikrotik):
    fake = mikrotik(version=V7)
    _, verification = provision(fake, interfaces=("ether1", "bridge"), netflow_version="ipfix")
    assert verification.ok
    assert fake.traffic_flow["interfaces"] == "ether1,bridge"
    assert fake.targets[0]["version"] == "ipfix"


def test_late_routeros_6_uses_dst_address_and_port(mikrotik):
    fake = mikrotik(version=V6_LATE)
    _, verification = provision(fake)
    assert verification.ok
    assert (fake.targets[0]["dst-address"], fake.targets[0]["port"]) == ("192.0.2.10", "2055")


def test_old_routeros_6_uses_address_ip_colon_port(mikrotik):
    fake = mikrotik(version=V6_OLD)
    _, verification = provision(fake)
    assert verification.ok
    assert fake.targets[0]["address"] == "192.0.2.10:2055"
    assert "dst-address" not in fake.targets[0]


def test_old_routeros_6_reprovisioned_keeps_one_address_target(mikrotik):
    fake = mikrotik(version=V6_OLD)
    provision(fake)
    provision(fake, collector_port=9995, previous_collector=("192.0.2.10", 2055))
    assert [t["address"] for t in fake.targets] == ["192.0.2.10:9995"]


def test_ipfix_on_old_routeros_6_is_refused_before_anything_is_sent(mikrotik):
    fake = mikrotik(version=V6_OLD)
    with pytest.raises(Unsupported, match="cannot export IPFIX"):
        provision(fake, netflow_version="ipfix")
    assert fake.targets == [] and fake.traffic_flow["enabled"] == "no"


def test_removal_takes_off_our_target_and_disables_traffic_flow(mikrotik):
    fake = mikrotik(version=V7)
    provision(fake)
    with driver_for("mikrotik")(spec(fake)) as driver:
        driver.remove()
        assert not driver.verify().ok
    assert fake.targets == []
    assert fake.traffic_flow["enabled"] == "no"


def test_removal_keeps_traffic_flow_on_for_other_targets(mikrotik):
    fake = mikrotik(version=V7)
    provision(fake)
    fake.targets.append({".id": "*99", "dst-address": "198.51.100.7", "port": "2055", "version": "5", "disabled": "no"})
    with driver_for("mikrotik")(spec(fake)) as driver:
        driver.remove()
    assert [t["dst-address"] for t in fake.targets] == ["198.51.100.7"]
    assert fake.traffic_flow["enabled"] == "yes"


def test_wrong_password_is_an_authentication_failure_that_never_shows_the_password(mikrotik):
    fake = mikrotik(version=V7)
    with pytest.raises(AuthenticationFailed) as failure:
        provision(fake, password="hunter2-wrong")
    assert "refused the username or password" in str(failure.value)
    assert "hunter2-wrong" not in str(failure.value)


def test_a_refused_command_rolls_back_what_was_applied_before_it(mikrotik):
    fake = mikrotik(version=V7)
    with pytest.raises(CommandRefused) as failure:
        provision(fake, interfaces=("ether1", "ether9"))
    message = str(failure.value)
    assert "input does not match any value of interface" in message
    assert "Nothing was left applied (1 earlier command(s) rolled back)" in message
    assert failure.value.applied == []
    assert failure.value.rolled_back == ["/ip traffic-flow target add dst-address=192.0.2.10 port=2055 version=9"]
    assert fake.targets == [] and fake.traffic_flow["enabled"] == "no"


def test_a_refused_update_restores_the_previous_target(mikrotik):
    fake = mikrotik(version=V7)
    provision(fake)
    with pytest.raises(CommandRefused):
        provision(fake, collector_port=9995, previous_collector=("192.0.2.10", 2055), interfaces=("nope",))
    assert [(t["dst-address"], t["port"]) for t in fake.targets] == [("192.0.2.10", "2055")]


def test_a_router_that_stops_answering_times_out_saying_what_was_applied(mikrotik):
    fake = mikrotik(version=V7, hang_after=5)  # login, resource, 2 reads, the add; then silence
    with pytest.raises(Timeout) as failure:
        provision(fake, timeout=0.3)
    assert "stopped answering" in str(failure.value)
    assert failure.value.applied == ["/ip traffic-flow target add dst-address=192.0.2.10 port=2055 version=9"]
    assert failure.value.not_applied == [
        "/ip traffic-flow set enabled=yes active-flow-timeout=1m"]


def test_a_router_that_never_answers_the_login_times_out(mikrotik):
    fake = mikrotik(hang_after=0)
    with pytest.raises(Timeout):
        provision(fake, timeout=0.3)


def test_nothing_listening_is_unreachable(mikrotik):
    fake = mikrotik()
    fake.stop()
    with pytest.raises(Unreachable, match="Cannot reach the RouterOS API"):
        provision(fake)


def test_api_ssl_connects_over_tls(mikrotik):
    fake = mikrotik(version=V7, tls=True)
    _, verification = provision(fake, use_tls=True)
    assert verification.ok


@pytest.mark.parametrize("version", [V7, V6_LATE])
@pytest.mark.parametrize("ntp, synced", [("synchronized", True), ("unsynchronized", False), ("disabled", False)])
def test_ntp_state_is_read_in_both_dialects(mikrotik, version, ntp, synced):
    fake = mikrotik(version=version, ntp=ntp)
    with driver_for("mikrotik")(spec(fake)) as driver:
        clock = driver.read_clock()
    assert clock.synchronized is synced
    assert clock.ntp_enabled is (ntp != "disabled")


def test_routeros_7_reports_its_ntp_server(mikrotik):
    with driver_for("mikrotik")(spec(mikrotik(version=V7))) as driver:
        assert driver.read_clock().detail == "NTP client synchronized to 192.0.2.123 (stratum 2)"


def test_routeros_6_sntp_detail_names_the_last_update(mikrotik):
    with driver_for("mikrotik")(spec(mikrotik(version=V6_LATE))) as driver:
        assert driver.read_clock().detail.startswith("SNTP updated from 192.0.2.123 252 s ago")


@pytest.mark.parametrize("version", [V7, V7_OLD_CLOCK, V6_OLD])
def test_clock_skew_is_measured_with_both_date_formats(mikrotik, version):
    fake = mikrotik(version=version, clock_offset_s=120)
    with driver_for("mikrotik")(spec(fake)) as driver:
        clock = driver.read_clock()
    assert 115 < clock.skew_s < 125


def test_clock_dates_before_and_after_7_10_parse_to_the_same_utc_moment():
    old = parse_clock({"date": "nov/22/2026", "time": "11:30:00", "gmt-offset": "+01:00"})
    new = parse_clock({"date": "2026-11-22", "time": "11:30:00", "gmt-offset": "+01:00"})
    assert old == new
    assert old.isoformat() == "2026-11-22T10:30:00+00:00"


def test_offline_plan_for_the_preview_uses_the_known_dialect():
    old = RouterSpec(host="h", username="u", password="", collector_host="192.0.2.10", collector_port=2055,
                     os_version=V6_OLD)
    assert driver_for("mikrotik")(old).plan(connected=False)[0] == \
        "/ip traffic-flow target add address=192.0.2.10:2055 version=9"


def test_the_fake_answers_queries_and_proplist_as_routeros_does(mikrotik):
    import routeros_api

    fake = mikrotik(version=V7)
    pool = routeros_api.RouterOsApiPool("127.0.0.1", "admin", "secret", port=fake.port, plaintext_login=True)
    api = pool.get_api()
    try:
        targets = api.get_resource("/ip/traffic-flow/target")
        targets.add(**{"dst-address": "192.0.2.1", "port": "2055"})
        targets.add(**{"dst-address": "192.0.2.2", "port": "2055"})
        found = targets.call("print", {"proplist": "dst-address"}, {"dst-address": "192.0.2.2"})
        assert found == [{"dst-address": "192.0.2.2"}]
    finally:
        pool.disconnect()


def test_the_fake_refuses_commands_before_login_with_fatal(mikrotik):
    import socket

    from .fakes.routeros import encode_length

    fake = mikrotik()
    with socket.create_connection(("127.0.0.1", fake.port), timeout=2) as conn:
        words = [b"/system/resource/print", b".tag=7"]
        conn.sendall(b"".join(encode_length(len(w)) + w for w in words) + b"\x00")
        reply = conn.recv(4096)
    assert reply.startswith(encode_length(6) + b"!fatal")
    assert b".tag=7" in reply
