"""Hard fuzzing of the decoder, on demand: it must raise nothing but ``DecodeError``.

    .venv/bin/python bench/fuzz_decoder.py [--packets 1000000] [--seed 1] [--out cases.txt]

An independent mutation generator (plain ``random``, not hypothesis, so it explores other
shapes than tests/test_decode_fuzz.py): valid packets of every layout the decoder knows
(v5, v9 and IPFIX data, options, NAT, variable-length, H3C, MikroTik, addressless) are
mutated by flipping bytes, truncating, inserting or duplicating bytes, and by setting the
header's count or length, or a set's id or length, to extremes. One long-lived decoder takes
them all (held data, templates and sequence state carry over, as in the collector), drains
every 500 packets and round-trips its state every 20,000. After every packet the held-data
bookkeeping must add up.

Each failure is printed as the hex of the packets since the last drain (the shortest prefix
that reproduces it is not searched for); paste it into tests/test_decode_regressions.py.
Exit status 1 when anything failed.
"""
from __future__ import annotations

import argparse
import random
import struct
import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ispflow.collector.decoder import DecodeError, FlowDecoder  # noqa: E402
from tests import synthetic  # noqa: E402
from tests.synthetic import Exporter, TemplateSpec  # noqa: E402

EXPORT = 1_767_225_900.0
EXTREMES = (0, 1, 2, 3, 4, 5, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFE, 0xFFFF)
VARIABLE = TemplateSpec(330, ((8, 4), (82, 65535), (12, 4), (100, 4, 9), (1, 3), (200, 65535, 29305), (154, 8)))
H3C = TemplateSpec(1024, ((8, 4), (12, 4), (7, 2), (4, 1), (1, 4), (82, 65535), (22, 4), (21, 4)))
MIKROTIK = TemplateSpec(258, ((60, 1), (22, 4), (21, 4), (2, 4), (1, 4), (7, 2), (11, 2), (10, 4), (14, 4),
                              (4, 1), (6, 1), (8, 4), (12, 4), (15, 4), (225, 4), (226, 4)))
WLC = TemplateSpec(261, ((95, 4), (56, 6), (1, 8), (2, 8), (22, 4), (21, 4)))


def seeds() -> list[bytes]:
    """Valid packets of every layout: the material mutations start from."""
    flows = synthetic.generate_flows(12, seed=5, ipv6_share=0.3)
    v4 = [f for f in flows if ":" not in f["src"]]
    named = [{**f, ("vlen", 82): b"x" * (i * 90)} for i, f in enumerate(v4)]
    out = list(synthetic.v5_packets(v4, export_time=EXPORT, sampling_interval=10))
    for domain in (0, 1536):
        v9 = Exporter(9, domain=domain)
        out += [v9.packet([v9.template_set(synthetic.V9_IPV4, synthetic.V9_IPV6, H3C, WLC),
                           v9.template_set(synthetic.V9_SAMPLER_OPTIONS)], EXPORT),
                v9.packet([v9.data_set(synthetic.V9_SAMPLER_OPTIONS, [{"sampler_id": 1,
                                                                       "sampler_random_interval": 9}], EXPORT),
                           v9.data_set(synthetic.V9_IPV4, v4, EXPORT), v9.data_set(H3C, named, EXPORT)], EXPORT),
                v9.packet([v9.data_set(synthetic.V9_NAT, [{"event": 4, "private": "10.0.0.1",
                                                           "public": "192.0.2.1"}], EXPORT),
                           v9.template_set(synthetic.V9_NAT), v9.data_set(WLC, [{"bytes": 5}], EXPORT)], EXPORT)]
        ipfix = Exporter(10, domain=domain)
        out += [ipfix.packet([ipfix.template_set(synthetic.IPFIX_IPV4, VARIABLE, MIKROTIK),
                              ipfix.template_set(synthetic.IPFIX_SAMPLING, synthetic.IPFIX_INIT_TIME)], EXPORT),
                ipfix.packet([ipfix.data_set(synthetic.IPFIX_SAMPLING, [{"sampling_packet_interval": 1,
                                                                         "sampling_packet_space": 3}], EXPORT),
                              ipfix.data_set(VARIABLE, named, EXPORT), ipfix.data_set(MIKROTIK, v4, EXPORT),
                              ipfix.data_set(synthetic.IPFIX_IPV4, v4, EXPORT)], EXPORT, 20),
                ipfix.packet([ipfix.data_set(synthetic.IPFIX_NAT, [{"event": 13, "private": "10.0.0.1"}], EXPORT),
                              ipfix.withdrawal_set(300), ipfix.template_set(synthetic.IPFIX_NAT),
                              ipfix.data_set(synthetic.IPFIX_INIT_TIME, [{}], EXPORT)], EXPORT, 1)]
    return out


def _set_offsets(packet: bytes) -> list[int]:
    """Where each set header starts, walking the lengths as far as they make sense."""
    version = struct.unpack_from(">H", packet)[0] if len(packet) >= 2 else 0
    pos = {9: 20, 10: 16}.get(version)
    offsets = []
    while pos is not None and pos + 4 <= len(packet):
        offsets.append(pos)
        length = struct.unpack_from(">H", packet, pos + 2)[0]
        if length < 4:
            break
        pos += length
    return offsets


def mutate(packet: bytes, rng: random.Random) -> bytes:
    data = bytearray(packet)
    for _ in range(rng.choice((1, 1, 1, 2, 3, 8))):
        kind = rng.randrange(8)
        if kind == 0 and data:  # flip bits of one byte
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif kind == 1 and data:  # a random byte
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif kind == 2:  # truncate
            del data[rng.randrange(len(data) + 1):]
        elif kind == 3:  # insert bytes
            at = rng.randrange(len(data) + 1)
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.choice((1, 2, 4, 7, 64))))
        elif kind == 4 and len(data) >= 4:  # header count (v5/v9) or IPFIX length at an extreme
            struct.pack_into(">H", data, 2, rng.choice(EXTREMES))
        elif kind == 5:  # a set's id or length at an extreme
            offsets = _set_offsets(bytes(data))
            if offsets:
                at = rng.choice(offsets) + rng.choice((0, 2))
                struct.pack_into(">H", data, at, rng.choice(EXTREMES + (len(data) - at, len(data) - at + 1)))
        elif kind == 6 and len(data) > 24:  # a 16-bit field anywhere (template counts, field lengths)
            at = rng.randrange(len(data) - 1)
            struct.pack_into(">H", data, at, rng.choice(EXTREMES))
        elif kind == 7 and len(data) > 20:  # duplicate a slice (sets repeated)
            start = rng.randrange(16, len(data))
            end = rng.randrange(start, len(data) + 1)
            data[end:end] = data[start:end]
    return bytes(data[:65535])


def consistent(decoder: FlowDecoder) -> str | None:
    """The held-data bookkeeping: what stats and the per-key totals say matches what is held."""
    held = [(d.index, tid, entry) for d in decoder._domain_list for tid, entries in d.pending.items()
            for entry in entries]
    total = sum(len(entry[1]) for *_, entry in held)
    if decoder.stats["held_sets"] != len(held) or decoder.stats["held_bytes"] != total:
        return f"stats say {decoder.stats['held_sets']} sets / {decoder.stats['held_bytes']} bytes, held {len(held)} / {total}"
    if sum(decoder._held_bytes.values()) != total:
        return f"per-template totals {sum(decoder._held_bytes.values())} != held {total}"
    return None


def run(packets: int, seed: int, report=print) -> list[list[bytes]]:
    """Feed ``packets`` mutated packets; return the failing runs (packets since the last drain)."""
    rng = random.Random(seed)
    material = seeds()
    decoder = FlowDecoder(pending_ttl=3600, max_pending_records=200)
    since_drain: list[bytes] = []
    failures = []
    for i in range(packets):
        base = rng.choice(material)
        packet = base if rng.random() < 0.1 else mutate(base, rng)
        exporter = rng.choice(("192.0.2.1", "192.0.2.2"))
        since_drain.append(packet)
        problem = None
        try:
            decoder.feed(packet, exporter, EXPORT + i / 1000)
        except DecodeError as error:
            if not str(error):
                problem = "DecodeError without a message"
        except Exception:  # noqa: BLE001  (what we hunt)
            problem = traceback.format_exc(limit=3)
        problem = problem or consistent(decoder)
        if i % 500 == 499 or problem:
            try:
                decoder.drain()
            except Exception:  # noqa: BLE001
                problem = problem or traceback.format_exc(limit=3)
        if i % 20_000 == 19_999:
            try:
                FlowDecoder().load_state(decoder.export_state())
            except Exception:  # noqa: BLE001
                problem = problem or traceback.format_exc(limit=3)
        if problem:
            failures.append(list(since_drain))
            report(f"packet {i}: {problem}\n  packets: {[p.hex() for p in since_drain]}")
            decoder = FlowDecoder(pending_ttl=3600, max_pending_records=200)
        if i % 500 == 499 or problem:
            since_drain = []
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    failures = run(args.packets, args.seed)
    print(f"{args.packets} mutated packets, seed {args.seed}: {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
