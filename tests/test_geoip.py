"""Country and AS enrichment from MMDB files (display only)."""
import os

from ispflow.config import Settings
from ispflow.geoip import GeoIP, Origin, origins

from .mmdb_files import ipinfo_country_asn, ipinfo_lite, maxmind_asn, maxmind_country, write_mmdb


def test_maxmind_country_and_asn_files_give_country_and_as(tmp_path):
    country = write_mmdb(tmp_path / "c.mmdb", {"198.51.100.0/24": maxmind_country("CZ", "Czechia")})
    asn = write_mmdb(tmp_path / "a.mmdb", {"198.51.100.0/24": maxmind_asn(2852, "CESNET")}, "GeoLite2-ASN")
    origin = GeoIP(country, asn).lookup("198.51.100.7")
    assert origin == Origin("CZ", "Czechia", 2852, "CESNET")
    assert origin.label() == "CZ · AS2852 CESNET"


def test_ipinfo_combined_file_gives_both(tmp_path):
    path = write_mmdb(tmp_path / "i.mmdb", {"2001:db8::/32": ipinfo_country_asn("DE", "Germany", 3320, "DTAG")},
                      "ipinfo country_asn.mmdb")
    assert GeoIP(path, path).lookup("2001:db8::1") == Origin("DE", "Germany", 3320, "DTAG")


def test_ipinfo_lite_layout_reads_the_country_code(tmp_path):
    path = write_mmdb(tmp_path / "l.mmdb", {"203.0.113.0/24": ipinfo_lite("RU", "Russia", 12389, "Rostelecom")},
                      "ipinfo lite.mmdb")
    assert GeoIP(path).lookup("203.0.113.9") == Origin("RU", "Russia", 12389, "Rostelecom")


def test_address_missing_from_the_database_is_unknown(tmp_path):
    path = write_mmdb(tmp_path / "c.mmdb", {"198.51.100.0/24": maxmind_country("CZ", "Czechia")})
    assert GeoIP(path).lookup("192.0.2.1").label() == ""


def test_exporter_as_number_wins_and_keeps_the_name_only_when_it_agrees(tmp_path):
    asn = write_mmdb(tmp_path / "a.mmdb", {"198.51.100.0/24": maxmind_asn(2852, "CESNET")}, "GeoLite2-ASN")
    geo = GeoIP("", asn)
    assert geo.lookup("198.51.100.7", exporter_as=2852) == Origin(asn=2852, as_name="CESNET")
    assert geo.lookup("198.51.100.7", exporter_as=65000) == Origin(asn=65000)
    assert geo.lookup("198.51.100.7", exporter_as=0) == Origin(asn=2852, as_name="CESNET")


def test_replaced_file_is_reopened(tmp_path):
    path = tmp_path / "c.mmdb"
    write_mmdb(path, {"198.51.100.0/24": maxmind_country("CZ", "Czechia")})
    geo = GeoIP(str(path))
    assert geo.lookup("198.51.100.7").country == "CZ"
    write_mmdb(tmp_path / "new.mmdb", {"198.51.100.0/24": maxmind_country("SK", "Slovakia")})
    os.replace(tmp_path / "new.mmdb", path)
    os.utime(path, (1, 1))  # a different modification time, whatever the clock's resolution
    geo._databases[0]._checked = 0.0
    assert geo.lookup("198.51.100.7").country == "SK"


def test_without_a_database_lookups_are_unknown_and_the_status_says_so():
    geo = GeoIP()
    assert geo.lookup("198.51.100.7") == Origin()
    assert "No GeoIP database configured" in geo.status()


def test_missing_or_broken_file_is_reported_not_raised(tmp_path):
    broken = tmp_path / "broken.mmdb"
    broken.write_bytes(b"not a database")
    geo = GeoIP(str(tmp_path / "absent.mmdb"), str(broken))
    assert geo.lookup("198.51.100.7") == Origin()
    status = geo.status()
    assert "absent.mmdb cannot be read" in status and "broken.mmdb is not an MMDB database" in status


def test_origins_reads_the_files_named_in_the_settings(tmp_path):
    path = write_mmdb(tmp_path / "c.mmdb", {"198.51.100.0/24": maxmind_country("CZ", "Czechia")})
    found = origins(["198.51.100.1", "192.0.2.1"], Settings(GEOIP_COUNTRY_DB=path))
    assert found["198.51.100.1"].country == "CZ" and found["192.0.2.1"].country is None


def test_bulk_country_lookup_answers_each_address_of_a_network(tmp_path):
    path = write_mmdb(tmp_path / "c.mmdb", {"198.51.100.0/25": maxmind_country("CZ", "Czechia"),
                                             "198.51.100.128/25": maxmind_country("SK", "Slovakia"),
                                             "2001:db8::/32": maxmind_country("DE", "Germany")})
    addresses = ["198.51.100.200", "198.51.100.1", "198.51.100.127", "198.51.100.128", "192.0.2.1",
                 "2001:db8::5", "2001:db9::1"]
    assert GeoIP(path).countries(addresses) == {
        "198.51.100.1": "CZ", "198.51.100.127": "CZ", "198.51.100.128": "SK", "198.51.100.200": "SK",
        "192.0.2.1": None, "2001:db8::5": "DE", "2001:db9::1": None}
