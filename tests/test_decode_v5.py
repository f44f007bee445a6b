"""NetFlow v5: every field, header times and sampling, sequence numbers, malformed packets."""
import pytest

from tests import synthetic
from tests.collector_helpers import check
from ispflow.collector.decoder import DecodeError, FlowDecoder

EXPORT = 1_767_225_900.0
FIELDS = ("src", "dst", "src_port", "dst_port", "protocol", "tcp_flags", "packets", "bytes", "in_if", "out_if",
          "src_as", "dst_as", "start", "end")


def decode(packets, decoder=None, exporter="192.0.2.1"):
    decoder = decoder or FlowDecoder()
    infos = [decoder.feed(p, exporter, EXPORT) for p in packets]
    flows, nat = decoder.drain()
    check(flows)
    return infos, synthetic.flow_dicts(flows)


def test_every_field_of_every_flow_round_trips():
    sent = synthetic.generate_flows(100, seed=5)
    infos, got = decode(synthetic.v5_packets(sent, export_time=EXPORT))
    assert [i.records for i in infos] == [30, 30, 30, 10]
    assert [{k: g[k] for k in FIELDS} for g in got] == [{k: s[k] for k in FIELDS} for s in sent]
    assert {g["sampling_rate"] for g in got} == {1}


def test_times_use_the_export_nanoseconds_and_a_wrapped_uptime():
    flow = dict(synthetic.generate_flows(1, seed=2)[0], start=EXPORT - 10.25, end=EXPORT - 0.5)
    # 50 days of uptime: the 32-bit millisecond counter has wrapped once.
    packets = synthetic.v5_packets([flow], export_time=EXPORT + 0.75, boot_time=EXPORT - 50 * 86400)
    infos, got = decode(packets)
    assert (got[0]["start"], got[0]["end"]) == (EXPORT - 10.25, EXPORT - 0.5)
    assert infos[0].export_time == EXPORT + 0.75


def test_the_header_sampling_interval_is_the_rate_and_counts_stay_raw():
    sent = synthetic.generate_flows(3, seed=3)
    infos, got = decode(synthetic.v5_packets(sent, export_time=EXPORT, sampling_interval=512, sampling_mode=1))
    assert infos[0].sampling_rate == 512
    assert [g["sampling_rate"] for g in got] == [512] * 3
    assert [g["bytes"] for g in got] == [s["bytes"] for s in sent]


def test_engine_type_and_id_make_the_domain():
    infos, _ = decode(synthetic.v5_packets(synthetic.generate_flows(1), export_time=EXPORT, engine_type=1,
                                           engine_id=7))
    assert infos[0].domain == 0x0107


def test_a_sequence_gap_counts_the_missing_flows():
    flows = synthetic.generate_flows(60, seed=1)
    first, _, third = synthetic.v5_packets(flows + flows[:30], export_time=EXPORT, sequence=1000)
    infos, _ = decode([first, third])
    assert [i.lost for i in infos] == [0, 30]


def test_an_exporter_restart_is_not_loss():
    flows = synthetic.generate_flows(30, seed=1)
    before = synthetic.v5_packets(flows, export_time=EXPORT, sequence=500_000)
    after = synthetic.v5_packets(flows, export_time=EXPORT, sequence=0)
    infos, _ = decode(before + after)
    assert [i.lost for i in infos] == [0, 0]


def test_the_sequence_counter_wraps_at_32_bits():
    flows = synthetic.generate_flows(30, seed=1)
    first = synthetic.v5_packets(flows, export_time=EXPORT, sequence=2**32 - 10)
    next_one = synthetic.v5_packets(flows, export_time=EXPORT, sequence=20)
    infos, _ = decode(first + next_one)
    assert infos[1].lost == 0


def test_sequence_state_survives_a_restart_of_the_decoder():
    flows = synthetic.generate_flows(30, seed=1)
    old = FlowDecoder()
    decode(synthetic.v5_packets(flows, export_time=EXPORT, sequence=0), old)
    new = FlowDecoder()
    new.load_state(old.export_state())
    infos, _ = decode(synthetic.v5_packets(flows, export_time=EXPORT, sequence=60), new)
    assert infos[0].lost == 30


def test_a_packet_shorter_than_its_record_count_is_refused():
    packet = synthetic.v5_packets(synthetic.generate_flows(2), export_time=EXPORT)[0]
    with pytest.raises(DecodeError, match="announces 2 records but holds 1"):
        FlowDecoder().feed(packet[:-10], "192.0.2.1", EXPORT)


def test_a_truncated_header_is_refused():
    with pytest.raises(DecodeError, match="shorter than its 24-byte header"):
        FlowDecoder().feed(b"\x00\x05\x00\x01", "192.0.2.1", EXPORT)


def test_an_unknown_version_is_refused():
    with pytest.raises(DecodeError, match="unknown NetFlow version 7"):
        FlowDecoder().feed(b"\x00\x07" + bytes(40), "192.0.2.1", EXPORT)


def test_flows_of_two_exporters_keep_their_exporter():
    decoder = FlowDecoder()
    decoder.feed(synthetic.v5_packets(synthetic.generate_flows(2), export_time=EXPORT)[0], "192.0.2.1", EXPORT)
    decoder.feed(synthetic.v5_packets(synthetic.generate_flows(3), export_time=EXPORT)[0], "2001:db8::9", EXPORT)
    flows, _ = decoder.drain()
    assert [f["exporter"] for f in synthetic.flow_dicts(flows)] == ["192.0.2.1"] * 2 + ["2001:db8::9"] * 3


def test_drain_empties_the_queue():
    decoder = FlowDecoder()
    decoder.feed(synthetic.v5_packets(synthetic.generate_flows(2), export_time=EXPORT)[0], "192.0.2.1", EXPORT)
    assert len(decoder.drain()[0]) == 2
    assert len(decoder.drain()[0]) == 0
