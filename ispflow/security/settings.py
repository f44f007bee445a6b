"""Thresholds of the security findings, changed by admins on the security settings page.

Kept under their own key in ``ispflow.settings`` (see ``module_settings.load_section``); the
defaults suit a residential ISP and are meant to give few, convincing findings.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

from .. import module_settings

KEY = "security"

# Login services that are brute-forced: FTP, SSH, telnet, POP3, IMAP, SMB, SMTPS, submission,
# IMAPS, POP3S, MS SQL, MySQL, RDP, PostgreSQL, VNC.
LOGIN_PORTS = (21, 22, 23, 110, 143, 445, 465, 587, 993, 995, 1433, 3306, 3389, 5432, 5900)

# name -> (lowest, highest) for the whole-number thresholds
LIMITS = {
    "scan_min_targets": (2, 1_000_000), "scan_min_ports": (2, 65536), "scan_failed_percent": (1, 100),
    "brute_min_attempts": (2, 1_000_000), "brute_max_bytes": (1, 10**9), "brute_failed_percent": (1, 100),
    "outbound_factor": (2, 1000), "outbound_min_megabytes": (1, 10**7), "outbound_baseline_days": (1, 60),
    "beacon_min_events": (4, 100_000), "beacon_max_cv_percent": (1, 100), "beacon_min_period_s": (1, 86400),
    "beacon_window_hours": (1, 48), "geography_min_flows": (1, 10**9),
}


@dataclass(frozen=True)
class SecuritySettings:
    # scans: one source, in one hour, many destinations or many ports, mostly failing
    scan_min_targets: int = 100
    scan_min_ports: int = 100
    scan_failed_percent: int = 60
    # brute force: one source, in one hour, many failed or short connections to a login port
    brute_ports: tuple[int, ...] = LOGIN_PORTS
    brute_min_attempts: int = 30
    brute_max_bytes: int = 10_000        # a connection this small counts as a (failed) attempt
    brute_failed_percent: int = 80
    # unusual outbound volume: an hour's upload against the subscriber's own hourly average
    outbound_factor: int = 10
    outbound_min_megabytes: int = 500
    outbound_baseline_days: int = 7
    # beaconing: regular new connections from one subscriber address to one remote address
    beacon_min_events: int = 12
    beacon_max_cv_percent: int = 10      # spread of the intervals, relative to their mean
    beacon_min_period_s: int = 10
    beacon_window_hours: int = 6
    # geography: traffic of subscribers with countries the ISP does not expect
    unexpected_countries: tuple[str, ...] = ()
    geography_min_flows: int = 1

    def validated(self) -> "SecuritySettings":
        """A normalised copy; raises ValueError naming the field that is wrong."""
        for name, (low, high) in LIMITS.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise ValueError(f"{name}: a whole number from {low} to {high}")
        ports = []
        for port in self.brute_ports:
            text = str(port).strip()
            if not text.isdigit() or not 0 < int(text) < 65536:
                raise ValueError(f"brute_ports: {port!r} is not a port number (1–65535)")
            ports.append(int(text))
        countries = []
        for code in self.unexpected_countries:
            text = str(code).strip().upper()
            if len(text) != 2 or not text.isalpha() or not text.isascii():
                raise ValueError(f"unexpected_countries: {code!r} is not a two-letter country code such as RU")
            countries.append(text)
        return replace(self, brute_ports=tuple(sorted(set(ports))), unexpected_countries=tuple(sorted(set(countries))))


def load(conn) -> SecuritySettings:
    return module_settings.load_section(conn, KEY, SecuritySettings)


def save(conn, settings: SecuritySettings) -> SecuritySettings:
    """Validate and store; the caller commits."""
    return module_settings.save_section(conn, KEY, settings)


NAMES = tuple(f.name for f in fields(SecuritySettings))
