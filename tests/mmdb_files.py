"""Small MMDB files written for tests in the layouts of MaxMind, DB-IP and IPinfo."""
from __future__ import annotations

from netaddr import IPSet
from mmdb_writer import MMDBWriter


def write_mmdb(path, records: dict[str, dict], database_type: str = "GeoLite2-Country") -> str:
    """Write ``{cidr: record}`` (IPv4 and IPv6 networks) to ``path``; returns the path as text."""
    writer = MMDBWriter(ip_version=6, database_type=database_type, ipv4_compatible=True)
    for network, record in records.items():
        writer.insert_network(IPSet([network]), record)
    writer.to_db_file(str(path))
    return str(path)


def maxmind_country(code: str, name: str) -> dict:
    return {"country": {"iso_code": code, "names": {"en": name}},
            "continent": {"code": "EU", "names": {"en": "Europe"}}}


def maxmind_asn(number: int, organisation: str) -> dict:
    return {"autonomous_system_number": number, "autonomous_system_organization": organisation}


def ipinfo_country_asn(code: str, name: str, asn: int, as_name: str) -> dict:
    return {"country": code, "country_name": name, "continent": "EU", "asn": f"AS{asn}", "as_name": as_name,
            "as_domain": "example.net"}


def ipinfo_lite(code: str, name: str, asn: int, as_name: str) -> dict:
    return {"country_code": code, "country": name, "continent_code": "EU", "asn": f"AS{asn}",
            "as_name": as_name}
