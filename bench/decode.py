"""Decode-only speed, flows/s on one core: ispflow's columnar decoder vs the pure-Python `netflow` package.

    .venv/bin/python bench/decode.py [--flows N] [--repeat R]

Both decoders get the same packets, built once per version by tests/synthetic.py from
the same generated flows (v5: 30 flows per packet; v9 and IPFIX: IPv4 flows with a template in
the first packet, 28 and 20 flows per packet; "IPFIX-vl" adds a variable-length interfaceName of
the same length in every record, "IPFIX-vm" one of varying length, which takes ispflow's
per-record path). ispflow's figure is feed() of every packet plus
a drain() every 2,000 packets (as the collector drains about once a second); the `netflow`
figure is its parse of every packet into flow objects. Best of R runs for each. Needs the
`bench` extra (netflow==0.12.2).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from netflow.ipfix import IPFIXExportPacket
from netflow.v5 import V5ExportPacket
from netflow.v9 import V9ExportPacket

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests import synthetic  # noqa: E402
from ispflow.collector.decoder import FlowDecoder  # noqa: E402

EXPORT = 1_767_225_900.0


# IPFIX_IPV4 plus interfaceName as a variable-length field: ispflow's slower, per-record path.
VARIABLE = synthetic.TemplateSpec(310, synthetic.IPFIX_IPV4.fields + ((82, 65535),))


def streams(n: int) -> dict[str, list[bytes]]:
    flows = synthetic.generate_flows(n, seed=42)
    named = [{**f, ("vlen", 82): b"ether1"} for f in flows]
    mixed = [{**f, ("vlen", 82): b"ether%d" % (i % 20)} for i, f in enumerate(flows)]  # lengths 6 and 7
    return {
        "v5": synthetic.v5_packets(flows, export_time=EXPORT),
        "v9": synthetic.Exporter(9).packets(flows, synthetic.V9_IPV4, EXPORT),
        "IPFIX": synthetic.Exporter(10).packets(flows, synthetic.IPFIX_IPV4, EXPORT),
        "IPFIX-vl": synthetic.Exporter(10).packets(named, VARIABLE, EXPORT),
        "IPFIX-vm": synthetic.Exporter(10).packets(mixed, VARIABLE, EXPORT),
    }


def ispflow_run(packets: list[bytes]) -> int:
    decoder = FlowDecoder()
    decoded = 0
    for i, packet in enumerate(packets, 1):
        decoder.feed(packet, "192.0.2.1", EXPORT)
        if i % 2000 == 0:
            decoded += len(decoder.drain()[0])
    return decoded + len(decoder.drain()[0])


def netflow_run(packets: list[bytes]) -> int:
    templates: dict = {}
    decoded = 0
    for packet in packets:
        version = packet[1]
        if version == 5:
            parsed = V5ExportPacket(packet)
        elif version == 9:
            parsed = V9ExportPacket(packet, templates)
        else:
            parsed = IPFIXExportPacket(packet, templates)
        decoded += len(parsed.flows)
    return decoded


def best_rate(run, packets, n: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        decoded = run(packets)
        best = min(best, time.perf_counter() - started)
        if decoded != n:
            sys.exit(f"{run.__name__} decoded {decoded} flows of {n}")
    return n / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, default=300_000, help="flows per version (default 300000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per decoder, best kept (default 3)")
    args = parser.parse_args()
    print(f"{args.flows} flows per version, best of {args.repeat}, one core")
    print(f"{'version':8} {'packets':>8} {'ispflow flows/s':>16} {'netflow flows/s':>16} {'ratio':>7}")
    for version, packets in streams(args.flows).items():
        ours = best_rate(ispflow_run, packets, args.flows, args.repeat)
        try:
            theirs = best_rate(netflow_run, packets, args.flows, args.repeat)
        except Exception as error:  # the peer's own limits are a result too
            print(f"{version:8} {len(packets):>8} {ours:>16,.0f} {'fails: ' + type(error).__name__:>16}")
            continue
        print(f"{version:8} {len(packets):>8} {ours:>16,.0f} {theirs:>16,.0f} {ours / theirs:>6.1f}x")


if __name__ == "__main__":
    main()
