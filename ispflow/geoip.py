"""Country and autonomous system of an address, read from the MMDB files an ISP already has.

Display only: an origin is looked up when a page, a report or a finding is shown and never
written into the stored flows (they are evidence). Two settings name the files,
``ISPFLOW_GEOIP_COUNTRY_DB`` and ``ISPFLOW_GEOIP_ASN_DB``; one file may hold both (IPinfo's
"country_asn", MaxMind's City databases hold countries only). A file replaced on disk is
reopened at the next lookup (its modification time is checked at most once a second), so a
weekly database update needs no restart. Without any file every lookup answers "unknown" and
``GeoIP.status()`` says why.

The record layouts understood:

- MaxMind GeoLite2/GeoIP2 Country and City, DB-IP country:
  ``{"country": {"iso_code": "CZ", "names": {"en": "Czechia"}}, "registered_country": …}``
- MaxMind GeoLite2/GeoIP2 ASN, DB-IP ASN:
  ``{"autonomous_system_number": 2852, "autonomous_system_organization": "CESNET z.s.p.o."}``
- IPinfo country / country_asn / ASN: ``{"country": "CZ", "country_name": "Czechia",
  "asn": "AS2852", "as_name": "…"}`` (the ASN database calls the name ``name``)
- IPinfo Lite: ``{"country_code": "CZ", "country": "Czechia", "asn": "AS2852", "as_name": "…"}``

Exporters may send AS numbers themselves (the flows' ``src_as``/``dst_as``); a non-zero one
is preferred to the database's, which then only names it when it agrees.
"""
from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Mapping

from .config import Settings


@dataclass(frozen=True)
class Origin:
    """Where an address is registered, as far as the databases (and the exporter) know."""

    country: str | None = None        # ISO 3166-1 alpha-2, upper case
    country_name: str | None = None
    asn: int | None = None
    as_name: str | None = None

    def label(self) -> str:
        """Short text for tables: ``CZ · AS2852 CESNET``; empty when nothing is known."""
        parts = []
        if self.country:
            parts.append(self.country)
        if self.asn:
            parts.append(f"AS{self.asn}" + (f" {self.as_name}" if self.as_name else ""))
        return " · ".join(parts)

    def as_dict(self) -> dict:
        return {"country": self.country, "country_name": self.country_name, "asn": self.asn,
                "as_name": self.as_name}


UNKNOWN = Origin()


def origin_from_record(record: Mapping | None) -> Origin:
    """An Origin from one MMDB record of any of the layouts in the module docstring."""
    if not isinstance(record, Mapping):
        return UNKNOWN
    country = name = None
    for key in ("country", "registered_country"):  # MaxMind, DB-IP
        value = record.get(key)
        if isinstance(value, Mapping) and value.get("iso_code"):
            country = str(value["iso_code"])
            names = value.get("names")
            name = names.get("en") if isinstance(names, Mapping) else None
            break
    if country is None:  # IPinfo
        code = record.get("country_code")
        plain = record.get("country")
        if isinstance(code, str) and code:
            country, name = code, plain if isinstance(plain, str) else None
        elif isinstance(plain, str) and len(plain) == 2:
            country, name = plain, record.get("country_name")
    asn = _as_number(record.get("autonomous_system_number", record.get("asn")))
    as_name = record.get("autonomous_system_organization") or record.get("as_name")
    if as_name is None and "asn" in record:
        as_name = record.get("name")
    return Origin(country.upper() if country else None, name if isinstance(name, str) else None, asn,
                  as_name if isinstance(as_name, str) else None)


def _as_number(value) -> int | None:
    if isinstance(value, int):
        return value or None
    if isinstance(value, str):
        digits = value.upper().removeprefix("AS")
        return int(digits) or None if digits.isdigit() else None
    return None


class _Database:
    """One MMDB file, reopened when its modification time changes."""

    CHECK_EVERY = 1.0  # seconds between stat() calls

    def __init__(self, path: str):
        self.path = path
        self._reader = None
        self._mtime: float | None = None
        self._checked = 0.0
        self.error: str | None = None
        self._lock = threading.Lock()

    def reader(self):
        now = time.monotonic()
        if now - self._checked < self.CHECK_EVERY and (self._reader is not None or self.error):
            return self._reader
        with self._lock:
            self._checked = now
            try:
                mtime = os.stat(self.path).st_mtime
            except OSError as exc:
                self._close(f"{self.path} cannot be read ({exc.strerror})")
                return None
            if mtime != self._mtime:
                self._close(None)
                self._open(mtime)
        return self._reader

    def _open(self, mtime: float) -> None:
        import maxminddb

        try:
            self._reader = maxminddb.open_database(self.path)
            self._mtime = mtime
            self.error = None
        except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
            self._reader, self._mtime = None, mtime
            self.error = f"{self.path} is not an MMDB database ({exc})"

    def _close(self, error: str | None) -> None:
        if self._reader is not None:
            self._reader.close()
        self._reader, self._mtime, self.error = None, None, error

    def record(self, address: str):
        reader = self.reader()
        if reader is None:
            return None
        try:
            return reader.get(address)
        except ValueError:  # not an address, or IPv6 in an IPv4-only database
            return None

    def record_and_prefix(self, address: str):
        """The record of an address and the prefix length it holds for ((None, 0) if unreadable)."""
        reader = self.reader()
        if reader is None:
            return None, 0
        try:
            return reader.get_with_prefix_len(address)
        except ValueError:
            return None, 0

    def description(self) -> str | None:
        reader = self.reader()
        if reader is None:
            return None
        meta = reader.metadata()
        return f"{meta.database_type} ({os.path.basename(self.path)}, built {time.strftime('%Y-%m-%d', time.gmtime(meta.build_epoch))})"


class GeoIP:
    """Lookups in the configured country and ASN databases (either may be absent)."""

    def __init__(self, country_path: str = "", asn_path: str = ""):
        paths = [p for p in dict.fromkeys((country_path, asn_path)) if p]
        self._databases = [_Database(p) for p in paths]

    @property
    def configured(self) -> bool:
        return bool(self._databases)

    def status(self) -> str:
        """One sentence for the status and security pages: which databases answer, or why none."""
        if not self._databases:
            return ("No GeoIP database configured: countries and AS names are not shown "
                    "(set ISPFLOW_GEOIP_COUNTRY_DB and ISPFLOW_GEOIP_ASN_DB).")
        parts = []
        for database in self._databases:
            described = database.description()
            parts.append(described if described else f"unavailable: {database.error}")
        return "GeoIP: " + "; ".join(parts) + "."

    def lookup(self, address, exporter_as: int | None = None) -> Origin:
        """The origin of one address; ``exporter_as`` is the AS number the exporter sent, if any."""
        text = str(address)
        country = name = as_name = None
        asn = None
        for database in self._databases:
            found = origin_from_record(database.record(text))
            country, name = country or found.country, name or found.country_name
            if asn is None and found.asn:
                asn, as_name = found.asn, found.as_name
        if exporter_as:
            if asn != exporter_as:
                as_name = None
            asn = int(exporter_as)
        return Origin(country, name, asn, as_name)

    def countries(self, addresses: Iterable) -> dict[str, str | None]:
        """The country code of many addresses (the detectors' bulk lookup).

        Walks the addresses in numeric order and reuses each answer for the rest of the network
        the database stored it for, so a busy hour's remote addresses cost about one lookup per
        network rather than one per address.
        """
        keyed = sorted((_numeric(text), text) for text in {str(a) for a in addresses})
        found: dict[str, str | None] = {text: None for _, text in keyed}
        for database in self._databases:
            version, last, country = 0, -1, None
            for (address_version, value), text in keyed:
                if found[text] is not None:
                    continue
                if address_version != version or value > last:
                    record, prefix = database.record_and_prefix(text)
                    bits = 32 if address_version == 4 else 128
                    size = 1 << (bits - prefix) if prefix else 1
                    version, last = address_version, value - value % size + size - 1
                    country = origin_from_record(record).country
                found[text] = country
        return found

    def lookup_many(self, addresses: Iterable, exporter_as: Mapping | None = None) -> dict[str, Origin]:
        """Origins keyed by the address as text; ``exporter_as`` maps address text to AS number."""
        exporter_as = exporter_as or {}
        return {text: self.lookup(text, exporter_as.get(text)) for text in {str(a) for a in addresses}}


def _numeric(text: str) -> tuple[int, int]:
    """(IP version, the address as a number), for ordering and network arithmetic."""
    if ":" in text:
        return 6, int.from_bytes(socket.inet_pton(socket.AF_INET6, text), "big")
    return 4, int.from_bytes(socket.inet_aton(text), "big")


@lru_cache(maxsize=8)
def _geoip_for(country_path: str, asn_path: str) -> GeoIP:
    return GeoIP(country_path, asn_path)


def geoip(settings: Settings | None = None) -> GeoIP:
    """The process's GeoIP for these settings (one open reader per file, shared)."""
    settings = settings or Settings.from_env()
    return _geoip_for(settings.GEOIP_COUNTRY_DB, settings.GEOIP_ASN_DB)


def origins(addresses: Iterable, settings: Settings | None = None,
            exporter_as: Mapping | None = None) -> dict[str, Origin]:
    """Country and AS of each address, for reports, graphs and pages (display only).

    ``addresses``: ``ipaddress`` objects or text; ``exporter_as``: address text → AS number the
    exporter sent (the flows' ``src_as``/``dst_as``), preferred where non-zero.
    """
    return geoip(settings).lookup_many(addresses, exporter_as)


def row_origins(rows, settings: Settings | None = None) -> dict[str, Origin]:
    """Origins of both ends of flow rows that have ``src_addr``/``dst_addr`` and, optionally,
    the exporter's ``src_as``/``dst_as``."""
    addresses, exporter_as = set(), {}
    for row in rows:
        for address, asn in ((row.src_addr, getattr(row, "src_as", None)),
                             (row.dst_addr, getattr(row, "dst_as", None))):
            text = str(address)
            addresses.add(text)
            if asn:
                exporter_as[text] = asn
    return origins(addresses, settings, exporter_as)
