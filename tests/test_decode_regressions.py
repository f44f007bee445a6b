"""Packets the hard fuzzer (bench/fuzz_decoder.py) found to break the decoder, kept as they were.

Each case is the hex of the packets fed in order to one decoder; every one must give records or
a ``DecodeError``, and the held-data bookkeeping must add up afterwards.
"""
import pytest

from ispflow.collector.decoder import DecodeError, FlowDecoder

from .decode_helpers import EXPORT

CASES = {
    # Two empty data flowsets held for template 1536 of source id 0, then the template: the
    # second release found its (0, 1536) byte count already deleted (KeyError in _unhold).
    "empty held sets released by their template": [
        "00090000000000000000000000000000000000000600000406000004",
        "000900000000000000000000000000010000000000000014060000030008000400010004000c0004",
    ],
    # The same through IPFIX: a held set of one record, then two empty ones, then the template.
    "empty and non-empty held sets in one message": [
        "000a0028000000000000000000000000010000100a000001000000640a0000020100000401000004",
        "000a002400000000000000000000000000020014010000030008000400010004000c0004",
    ],
}


@pytest.mark.parametrize("name", CASES)
def test_a_case_the_fuzzer_found_gives_records_or_a_decode_error(name):
    decoder = FlowDecoder()
    for packet in CASES[name]:
        try:
            decoder.feed(bytes.fromhex(packet), "192.0.2.1", EXPORT)
        except DecodeError:
            pass
    decoder.drain()
    held = [entry for d in decoder._domain_list for entries in d.pending.values() for entry in entries]
    assert decoder.stats["held_sets"] == len(held)
    assert decoder.stats["held_bytes"] == sum(decoder._held_bytes.values()) == sum(len(e[1]) for e in held)


def test_the_held_record_is_released_when_empty_sets_were_held_with_it():
    decoder = FlowDecoder()
    for packet in CASES["empty and non-empty held sets in one message"]:
        decoder.feed(bytes.fromhex(packet), "192.0.2.1", EXPORT)
    flows, _ = decoder.drain()
    assert len(flows) == 1 and bytes(flows.src_addr[0][:4]) == bytes([10, 0, 0, 1])
