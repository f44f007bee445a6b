"""Findings in generated traffic: each known incident is found, ordinary heavy users are not."""
from datetime import timedelta

import pytest
import sqlalchemy as sa

from ispflow.geoip import GeoIP
from tests.sample_flows import insert_flows
from ispflow.security import settings as security_settings
from ispflow.security.findings import analyse_period, complete_hours, grouped_findings, search_link

from . import security_traffic as t
from .mmdb_files import maxmind_country, write_mmdb

NOW = t.HOUR + timedelta(hours=2)


@pytest.fixture(scope="module")
def generated():
    return t.traffic()


@pytest.fixture
def geo(tmp_path):
    path = write_mmdb(tmp_path / "country.mmdb", {"203.0.113.0/24": maxmind_country("RU", "Russia"),
                                                   "198.18.0.0/15": maxmind_country("NL", "Netherlands")})
    return GeoIP(path)


@pytest.fixture
def analysed(db_engine, generated, geo):
    with db_engine.begin() as conn:
        security_settings.save(conn, security_settings.SecuritySettings(unexpected_countries=("ru",)))
    with db_engine.connect() as conn:
        insert_flows(conn, generated)
        conn.commit()
    analyse_period(db_engine, t.HOUR, t.HOUR + timedelta(hours=1), geo, now=NOW)
    with db_engine.connect() as conn:
        return grouped_findings(conn, t.HOUR, t.HOUR + timedelta(hours=1))


def of_kind(rows, kind):
    return {(str(r.subject), str(r.peer) if r.peer else None, r.port) for r in rows if r.kind == kind}


def test_a_subscriber_scanning_the_internet_is_found(analysed):
    assert (t.SCANNER, None, None) in of_kind(analysed, "scan")


def test_a_port_scan_of_a_subscriber_is_found_with_its_target(analysed):
    assert (t.OUTSIDE_SCANNER, t.PORT_SCAN_TARGET, None) in of_kind(analysed, "scan")


def test_ordinary_and_heavy_users_are_not_scanners(analysed):
    assert {s for s, _, _ in of_kind(analysed, "scan")} == {t.SCANNER, t.OUTSIDE_SCANNER}


def test_ssh_password_guessing_is_brute_force_on_port_22(analysed):
    assert of_kind(analysed, "bruteforce") == {(t.BRUTE, t.BRUTE_TARGET, 22)}


def test_the_exfiltration_is_unusual_outbound_volume_and_the_steady_heavy_uploader_is_not(analysed):
    found = [r for r in analysed if r.kind == "outbound"]
    assert [(r.account, str(r.subject)) for r in found] == [(t.account_of(t.EXFIL), t.EXFIL)]
    assert found[0].evidence["bytes"] == 3_000_000_000
    assert found[0].evidence["usual_bytes"] == 5_000_000


def test_sampled_flows_count_at_their_stored_volume_which_is_already_scaled(db_engine, generated, geo):
    """A 1-in-100 exporter's counters are stored multiplied by 100; the finding reports them as stored."""
    with db_engine.connect() as conn:
        insert_flows(conn, [dict(r, sampling_rate=100) for r in generated if r["src_addr"] == t.EXFIL])
        conn.commit()
    analyse_period(db_engine, t.HOUR, t.HOUR + timedelta(hours=1), geo, now=NOW)
    with db_engine.connect() as conn:
        [found] = grouped_findings(conn, t.HOUR, t.HOUR + timedelta(hours=1), kind="outbound")
    assert (found.evidence["bytes"], found.evidence["usual_bytes"]) == (3_000_000_000, 5_000_000)


def test_the_beacon_is_found_and_a_long_connection_is_not(analysed):
    assert of_kind(analysed, "beacon") == {(t.BEACON, t.BEACON_PEER, 443)}
    beacon = next(r for r in analysed if r.kind == "beacon")
    assert 295 <= beacon.evidence["period_s"] <= 305


def test_traffic_with_an_unexpected_country_is_found(analysed):
    found = [r for r in analysed if r.kind == "geography"]
    assert [(str(r.subject), r.label) for r in found] == [(t.GEO, "RU")]


def test_findings_are_ranked_by_score(analysed):
    scores = [r.score for r in analysed]
    assert scores == sorted(scores, reverse=True)


def test_without_unexpected_countries_geography_finds_nothing(db_engine, generated, geo):
    with db_engine.connect() as conn:
        insert_flows(conn, [r for r in generated if r["src_addr"] == t.GEO])
        conn.commit()
    analyse_period(db_engine, t.HOUR, t.HOUR + timedelta(hours=1), geo, now=NOW)
    with db_engine.connect() as conn:
        assert grouped_findings(conn, t.HOUR, t.HOUR + timedelta(hours=1), kind="geography") == []


def test_an_hour_is_analysed_once_and_recorded_even_without_findings(db_engine, geo):
    assert analyse_period(db_engine, t.HOUR, t.HOUR + timedelta(hours=3), geo, now=NOW) == 1
    assert analyse_period(db_engine, t.HOUR, t.HOUR + timedelta(hours=3), geo, now=NOW) == 0
    with db_engine.connect() as conn:
        assert conn.execute(sa.text("select findings from ispflow.security_windows")).scalars().all() == [0]


def test_an_hour_is_analysed_only_after_it_settled():
    assert complete_hours(t.HOUR, t.HOUR + timedelta(hours=2), t.HOUR + timedelta(minutes=63)) == []
    assert complete_hours(t.HOUR, t.HOUR + timedelta(hours=2), t.HOUR + timedelta(minutes=66)) == [t.HOUR]


def test_the_flows_link_selects_the_finding_s_flows(analysed):
    brute = next(r for r in analysed if r.kind == "bruteforce")
    link = search_link(brute)
    assert link["ip"] == t.BRUTE and link["peer"] == t.BRUTE_TARGET and link["port"] == "22"
    assert link["from"] <= brute.first_seen.isoformat() and link["to"] > brute.last_seen.isoformat()


def test_thresholds_are_validated_with_the_field_named():
    with pytest.raises(ValueError, match="unexpected_countries"):
        security_settings.SecuritySettings(unexpected_countries=("Russia",)).validated()
    with pytest.raises(ValueError, match="scan_min_targets"):
        security_settings.SecuritySettings(scan_min_targets=0).validated()
    assert security_settings.SecuritySettings(unexpected_countries=(" ru",)).validated().unexpected_countries == ("RU",)


def test_findings_past_the_flows_retention_period_are_deleted(db_engine, geo):
    from ispflow.module_settings import ModuleSettings, save
    from ispflow.security.findings import purge_expired

    with db_engine.begin() as conn:
        save(conn, ModuleSettings(retention_flows_months=6))
    analyse_period(db_engine, t.HOUR - timedelta(days=200), t.HOUR - timedelta(days=200) + timedelta(hours=1), geo,
                   now=NOW)
    analyse_period(db_engine, t.HOUR, t.HOUR + timedelta(hours=1), geo, now=NOW)
    with db_engine.begin() as conn:
        assert purge_expired(conn, NOW) == 1
        assert conn.execute(sa.text("select window_start from ispflow.security_windows")).scalars().all() == [t.HOUR]


def test_the_periodic_job_analyses_the_settled_hours_of_the_last_day(db_engine, database_url):
    from ispflow.config import Settings
    from ispflow.security.findings import analyse_recent

    settings = Settings(DATABASE_URL=database_url)
    # 12:00 minus a day: 12:00 the day before to 11:00, the last hour to have settled by 12:05
    assert analyse_recent(settings, now=t.HOUR + timedelta(hours=2, minutes=5)) == "analysed 24 hour(s)"
    assert analyse_recent(settings, now=t.HOUR + timedelta(hours=2, minutes=6)) == "analysed 0 hour(s)"
