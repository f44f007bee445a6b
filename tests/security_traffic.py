"""A day of generated traffic with known incidents hidden among ordinary subscribers.

``HOUR`` is the analysed hour; the addresses below name who does what in it.
"""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

from tests.sample_flows import flow

HOUR = datetime(2026, 1, 10, 10, tzinfo=timezone.utc)

ORDINARY = [f"100.64.0.{i}" for i in range(1, 21)]
HEAVY = "100.64.0.50"          # uploads 2 GB every hour and browses hundreds of sites: ordinary
EXFIL = "100.64.0.60"          # usually 5 MB an hour, 3 GB in the analysed hour
SCANNER = "100.64.0.70"        # a compromised subscriber probing telnet across the internet
OUTSIDE_SCANNER = "203.0.113.66"   # probes 200 ports of one subscriber
PORT_SCAN_TARGET = "100.64.0.5"
BRUTE = "198.51.100.77"        # SSH password guessing against one subscriber's server
BRUTE_TARGET = "100.64.0.8"
BEACON = "100.64.0.90"         # calls 192.0.2.200 every five minutes
BEACON_PEER = "192.0.2.200"
LONG_LIVED = "100.64.0.91"     # one long connection exported every minute: regular, not a beacon
GEO = "100.64.0.95"            # talks to an address in RU
GEO_PEER = "203.0.113.200"
WEB = [f"198.18.{i // 250}.{i % 250 + 1}" for i in range(400)]


def account_of(address: str) -> str:
    return "ACC-" + address.rsplit(".", 1)[1]


def out(ts, src, dst, **fields):
    return flow(ts, src, dst, account=account_of(src), direction="out", **fields)


def inbound(ts, src, dst, **fields):
    return flow(ts, src, dst, account=account_of(dst), direction="in", **fields)


def traffic(seed: int = 7) -> list[dict]:
    rnd = random.Random(seed)
    rows = []

    def at(start, span_s):
        return start + timedelta(seconds=rnd.uniform(0, span_s))

    # ordinary subscribers during the day before and the analysed hour
    for hour in range(-12, 1):
        start = HOUR + timedelta(hours=hour)
        for address in ORDINARY:
            for _ in range(30):
                rows.append(out(at(start, 3600), address, rnd.choice(WEB[:60]), src_port=rnd.randint(32768, 60999),
                                bytes=rnd.randint(2_000, 200_000), packets=rnd.randint(10, 200)))
            rows.append(out(at(start, 3600), address, rnd.choice(WEB), src_port=rnd.randint(32768, 60999),
                            dst_port=443, tcp_flags=2, bytes=60, packets=1))
    # the heavy user: a steady 2 GB an hour for a week, and a browsing session of 300 sites
    for hour in range(-7 * 24, 1):
        start = HOUR + timedelta(hours=hour)
        for _ in range(4):
            rows.append(out(at(start, 3600), HEAVY, "198.18.200.1", src_port=rnd.randint(32768, 60999),
                            bytes=500_000_000, packets=400_000, seconds=600))
    for site in WEB[:300]:
        rows.append(out(at(HOUR, 3600), HEAVY, site, src_port=rnd.randint(32768, 60999), bytes=30_000))
    # the exfiltration: 5 MB an hour for a week, then 3 GB
    for hour in range(-7 * 24, 0):
        rows.append(out(at(HOUR + timedelta(hours=hour), 3600), EXFIL, rnd.choice(WEB[:60]), bytes=5_000_000,
                        packets=5_000))
    for part in range(6):
        rows.append(out(HOUR + timedelta(minutes=5 + part * 8), EXFIL, "192.0.2.99", src_port=40000 + part,
                        bytes=500_000_000, packets=400_000, seconds=400))
    # the telnet scan by a subscriber, and a port scan of a subscriber from outside
    for i in range(300):
        rows.append(out(at(HOUR, 1800), SCANNER, f"198.19.{i // 200}.{i % 200 + 1}", dst_port=23,
                        src_port=rnd.randint(32768, 60999), bytes=60, packets=1,
                        tcp_flags=2))
    for port in range(1, 201):
        rows.append(inbound(at(HOUR, 600), OUTSIDE_SCANNER, PORT_SCAN_TARGET, dst_port=port, src_port=55555,
                            bytes=44, packets=1, tcp_flags=2))
    # SSH password guessing: short connections that each complete a handshake
    for _ in range(60):
        rows.append(inbound(at(HOUR, 3600), BRUTE, BRUTE_TARGET, dst_port=22, src_port=rnd.randint(32768, 60999),
                            bytes=3_200, packets=22))
    # the beacon: every 300 s ± 5 s for six hours, a new connection each time
    moment = HOUR - timedelta(hours=5)
    while moment < HOUR + timedelta(hours=1):
        rows.append(out(moment, BEACON, BEACON_PEER, src_port=rnd.randint(32768, 60999), bytes=1_800, packets=9))
        moment += timedelta(seconds=300 + rnd.uniform(-5, 5))
    # one long connection exported every 60 s: same source port throughout
    for minute in range(-120, 60):
        rows.append(out(HOUR + timedelta(minutes=minute), LONG_LIVED, "192.0.2.201", src_port=44321,
                        bytes=90_000, packets=80, seconds=60))
    # the unexpected country
    for _ in range(5):
        rows.append(out(at(HOUR, 3600), GEO, GEO_PEER, src_port=rnd.randint(32768, 60999), bytes=20_000))
    return rows
