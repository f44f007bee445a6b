"""Hostile input: whatever the bytes, feed() gives records or a DecodeError, and drain() still works."""
import importlib.util
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tests import synthetic
from tests.collector_helpers import check
from ispflow.collector.decoder import DecodeError, FlowDecoder
from tests.synthetic import Exporter, TemplateSpec

EXPORT = 1_767_225_900.0
FLOWS = synthetic.generate_flows(6, seed=3, ipv6_share=0.3)
V4 = [f for f in FLOWS if ":" not in f["src"]]
NAMED = [{**f, ("vlen", 82): b"x" * (i * 150)} for i, f in enumerate(V4)]  # lengths differ record to record
VARIABLE = TemplateSpec(330, ((8, 4), (82, 65535), (12, 4), (100, 4, 9), (1, 3), (200, 65535, 29305), (154, 8)))


def _v9_packets():
    e = Exporter(9)
    return [e.packet([e.template_set(synthetic.V9_IPV4, synthetic.V9_IPV6),
                      e.template_set(synthetic.V9_SAMPLER_OPTIONS),
                      e.data_set(synthetic.V9_SAMPLER_OPTIONS, [{"sampler_id": 1, "sampler_random_interval": 9}],
                                 EXPORT),
                      e.data_set(synthetic.V9_IPV4, V4, EXPORT)], EXPORT),
            e.packet([e.data_set(synthetic.V9_NAT, [{"event": 4, "private": "10.0.0.1", "public": "192.0.2.1"}],
                                 EXPORT), e.template_set(synthetic.V9_NAT)], EXPORT)]


def _ipfix_packets():
    e = Exporter(10)
    return [e.packet([e.template_set(synthetic.IPFIX_IPV4, VARIABLE),
                      e.template_set(synthetic.IPFIX_SAMPLING, synthetic.IPFIX_INIT_TIME),
                      e.data_set(synthetic.IPFIX_INIT_TIME, [{}], EXPORT),
                      e.data_set(synthetic.IPFIX_SAMPLING, [{"sampling_packet_interval": 1,
                                                             "sampling_packet_space": 3}], EXPORT),
                      e.data_set(VARIABLE, V4, EXPORT), e.data_set(VARIABLE, NAMED, EXPORT),
                      e.data_set(synthetic.IPFIX_IPV4, V4, EXPORT)], EXPORT, 11),
            e.packet([e.withdrawal_set(300), e.template_set(synthetic.IPFIX_NAT),
                      e.data_set(synthetic.IPFIX_NAT, [{"event": 13, "private": "10.0.0.1"}], EXPORT)], EXPORT, 1)]


VALID = {5: synthetic.v5_packets(V4, export_time=EXPORT, sampling_interval=10), 9: _v9_packets(),
         10: _ipfix_packets()}
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def feed_safely(decoder, packet):
    try:
        decoder.feed(packet, "192.0.2.1", EXPORT)
    except DecodeError as error:
        assert str(error)
    flows, nat = decoder.drain()
    check(flows)
    check(nat)


def primed(version):
    """A decoder that already knows the version's templates, so mutated data sets reach the decoding."""
    decoder = FlowDecoder(max_pending_records=50)
    for packet in VALID[version]:
        decoder.feed(packet, "192.0.2.1", EXPORT)
    decoder.drain()
    return decoder


def test_the_valid_packets_decode():
    for version, packets in VALID.items():
        decoder = FlowDecoder()
        records = sum(decoder.feed(p, "192.0.2.1", EXPORT).records for p in packets)
        assert records >= len(V4), version


@FUZZ
@given(st.binary(max_size=1500))
def test_any_bytes(data):
    feed_safely(FlowDecoder(), data)


@FUZZ
@given(st.sampled_from([5, 9, 10]), st.binary(max_size=1500))
def test_any_bytes_after_a_known_version(version, body):
    feed_safely(primed(version), version.to_bytes(2, "big") + body)


MUTATIONS = st.lists(st.tuples(st.sampled_from(["truncate", "flip", "overwrite", "insert", "delete"]),
                               st.integers(0, 2000), st.integers(0, 65535)), min_size=1, max_size=4)


def mutate(packet: bytes, mutations) -> bytes:
    data = bytearray(packet)
    for kind, where, value in mutations:
        where = where % (len(data) + 1)
        if kind == "truncate":
            del data[where:]
        elif kind == "flip" and where < len(data):
            data[where] ^= 1 << (value % 8)
        elif kind == "overwrite":  # bad lengths, counts and ids are two-byte fields
            data[where:where + 2] = value.to_bytes(2, "big")
        elif kind == "insert":
            data[where:where] = value.to_bytes(2, "big")
        elif kind == "delete":
            del data[where:where + 1 + value % 8]
    return bytes(data)


@FUZZ
@given(st.sampled_from([5, 9, 10]), st.integers(0, 1), MUTATIONS)
def test_mutated_valid_packets(version, which, mutations):
    packets = VALID[version]
    packet = mutate(packets[which % len(packets)], mutations)
    feed_safely(primed(version), packet)
    feed_safely(FlowDecoder(), packet)


@FUZZ
@given(st.binary(max_size=500))
def test_any_saved_state_loads_or_is_refused(data):
    decoder = FlowDecoder()
    try:
        decoder.load_state(data)
    except DecodeError as error:
        assert str(error)


JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True)
                    | st.text(max_size=5), lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)


@FUZZ
@given(st.integers(0, 200), JSON)
def test_a_saved_state_with_a_value_replaced_loads_or_is_refused(position, value):
    state = json.loads(primed(10).export_state())
    paths = list(_paths(state))
    container, key = paths[position % len(paths)]
    container[key] = value
    decoder = FlowDecoder()
    try:
        decoder.load_state(json.dumps(state).encode())
    except DecodeError as error:
        assert str(error)
    for packet in VALID[10]:
        feed_safely(decoder, packet)


def _paths(node):
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in items:
        yield node, key
        yield from _paths(child)


def test_extreme_values_decode_without_overflow():
    exporter = Exporter(10)
    spec = TemplateSpec(360, ((8, 4), (12, 4), (1, 8), (2, 8), (160, 8), (22, 4), (21, 4), (34, 8), (48, 8)))
    flow = dict(V4[0], bytes=2**64 - 1, packets=2**63, system_init_ms=2**64 - 1, sampling_interval=2**64 - 1,
                sampler_id=2**64 - 1)
    options = [{"system_init_ms": 2**64 - 1, "sampling_packet_interval": 1, "sampling_packet_space": 2**32 - 1}]
    packet = exporter.packet([exporter.template_set(synthetic.IPFIX_INIT_TIME, synthetic.IPFIX_SAMPLING),
                              exporter.data_set(synthetic.IPFIX_INIT_TIME, options, EXPORT),
                              exporter.data_set(synthetic.IPFIX_SAMPLING, options, EXPORT),
                              exporter.template_set(spec), exporter.data_set(spec, [flow], EXPORT)], EXPORT, 3)
    decoder = FlowDecoder()
    decoder.feed(packet, "192.0.2.1", EXPORT)
    flows, _ = decoder.drain()
    check(flows)
    assert (flows.bytes[0], flows.packets[0]) == (2**63 - 1, 2**63 - 1)
    assert 1 <= flows.sampling_rate[0] <= 2**31 - 1


@pytest.mark.slow
def test_a_long_run_of_the_independent_mutation_fuzzer_finds_nothing():
    """bench/fuzz_decoder.py on demand (``-m slow``); a failure prints the packets to keep as a regression."""
    spec = importlib.util.spec_from_file_location("fuzz_decoder", Path(__file__).parents[1] / "bench" / "fuzz_decoder.py")
    fuzzer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fuzzer)
    assert fuzzer.run(200_000, seed=11) == []
