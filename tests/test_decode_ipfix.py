"""IPFIX (RFC 7011): time encodings, variable-length and enterprise fields, withdrawal, sampling, NAT."""
import struct

import pytest

from tests import synthetic
from ispflow.collector.decoder import DecodeError, FlowDecoder
from tests.synthetic import Exporter, TemplateSpec

from .decode_helpers import EXPORT, drained, same

ROUTER = "2001:db8::1"
CORE = ("src", "dst", "src_port", "dst_port", "protocol", "tcp_flags", "packets", "bytes", "in_if", "out_if",
        "src_as", "dst_as")
FIELDS = CORE + ("start", "end")
ADDRESSES = ((8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (1, 8), (2, 8))


def feed_all(decoder, packets, exporter=ROUTER, at=EXPORT):
    return [decoder.feed(p, exporter, at) for p in packets]


def round_trip(sent, spec, exporter=None, decoder=None):
    decoder = decoder or FlowDecoder()
    infos = feed_all(decoder, (exporter or Exporter(10)).packets(sent, spec, EXPORT))
    return infos, drained(decoder)[0]


def drained_from(records, spec):
    decoder = FlowDecoder()
    feed_all(decoder, Exporter(10).packets(records, spec, EXPORT))
    return drained(decoder)


def test_ipv4_flows_round_trip_every_field():
    sent = synthetic.generate_flows(150, seed=11)
    infos, got = round_trip(sent, synthetic.IPFIX_IPV4)
    assert sum(i.records for i in infos) == 150
    assert same(got, sent)


def test_ipv6_flows_round_trip_every_field():
    sent = synthetic.generate_flows(40, seed=12, ipv6_share=1.0)
    _, got = round_trip(sent, synthetic.IPFIX_IPV6)
    assert same(got, sent)


@pytest.mark.parametrize("start_end", [(154, 155), (156, 157), (152, 153), (158, 159)],
                         ids=["microseconds", "nanoseconds", "milliseconds", "delta-microseconds"])
def test_absolute_and_delta_times_decode_to_the_millisecond(start_end):
    spec = TemplateSpec(320, ADDRESSES + ((start_end[0], 8 if start_end[0] < 158 else 4),
                                          (start_end[1], 8 if start_end[1] < 158 else 4)))
    sent = [dict(f, start=EXPORT - 20.123, end=EXPORT - 3.007) for f in synthetic.generate_flows(2)]
    _, got = round_trip(sent, spec)
    assert same(got, sent, ("src", "start", "end"))


def test_second_times_decode():
    spec = TemplateSpec(321, ADDRESSES + ((150, 4), (151, 4)))
    sent = [dict(synthetic.generate_flows(1)[0], start=EXPORT - 20, end=EXPORT - 3)]
    _, got = round_trip(sent, spec)
    assert same(got, sent, ("start", "end"))


def test_uptime_times_use_the_system_init_time_from_options_data():
    boot = EXPORT - 86400.5
    exporter = Exporter(10, boot_time=boot)
    decoder = FlowDecoder()
    decoder.feed(exporter.packet([exporter.template_set(synthetic.IPFIX_INIT_TIME),
                                  exporter.data_set(synthetic.IPFIX_INIT_TIME, [{}], EXPORT)], EXPORT, 1),
                 ROUTER, EXPORT)
    spec = TemplateSpec(322, ADDRESSES + ((22, 4), (21, 4)))
    sent = [dict(synthetic.generate_flows(1)[0], start=EXPORT - 9.5, end=EXPORT - 1.25)]
    _, got = round_trip(sent, spec, exporter, decoder)
    assert same(got, sent, ("start", "end"))


def test_uptime_times_use_the_system_init_time_in_the_record():
    spec = TemplateSpec(323, ADDRESSES + ((160, 8), (22, 4), (21, 4)))
    sent = [dict(synthetic.generate_flows(1)[0], start=EXPORT - 9.5, end=EXPORT - 1.25)]
    _, got = round_trip(sent, spec, Exporter(10, boot_time=EXPORT - 1000))
    assert same(got, sent, ("start", "end"))


def test_without_any_time_field_the_export_time_is_used():
    _, got = round_trip(synthetic.generate_flows(1), TemplateSpec(324, ADDRESSES))
    assert (got[0]["start"], got[0]["end"]) == (EXPORT, EXPORT)


def test_variable_length_and_enterprise_fields_are_skipped():
    spec = TemplateSpec(330, ((8, 4), (82, 65535), (12, 4), (100, 4, 9), (7, 2), (11, 2), (4, 1),
                              (200, 65535, 29305), (1, 8), (2, 8), (152, 8), (153, 8)))
    sent = synthetic.generate_flows(3, seed=7)
    sent[0][("vlen", 82)] = b"ether1"
    sent[1][("vlen", 82)] = b"x" * 300  # three-byte length prefix
    sent[2][("vlen", 200)] = b""
    _, got = round_trip(sent, spec)
    assert same(got, sent, ("src", "dst", "src_port", "dst_port", "protocol", "bytes", "packets", "start", "end"))


def test_records_repeating_the_same_variable_lengths_decode_alike():
    spec = TemplateSpec(332, ((8, 4), (82, 65535), (12, 4), (83, 65535), (1, 8), (152, 8)))
    sent = [{**f, ("vlen", 82): b"sfp-sfpplus1", ("vlen", 83): bytes(256)} for f in synthetic.generate_flows(6)]
    decoder = FlowDecoder()
    infos = feed_all(decoder, Exporter(10).packets(sent, spec, EXPORT, per_packet=6))
    assert infos[0].records == 6
    assert same(drained(decoder)[0], sent, ("src", "dst", "bytes", "start"))


def test_a_template_of_only_variable_length_fields_is_read_and_its_addressless_records_counted():
    decoder = FlowDecoder()
    infos, got = round_trip(synthetic.generate_flows(2), TemplateSpec(331, ((82, 65535),)), decoder=decoder)
    assert sum(i.records for i in infos) == 2
    assert got == []
    assert decoder.take_dropped() == {(ROUTER, "addressless_records"): 2}


def test_set_padding_is_not_taken_for_a_record():
    exporter = Exporter(10)
    sent = synthetic.generate_flows(1)
    data = exporter.data_set(synthetic.IPFIX_IPV4, sent, EXPORT, padding=True)
    assert len(data) % 4 == 0 and len(data) - 4 > 62
    packet = exporter.packet([exporter.template_set(synthetic.IPFIX_IPV4), data], EXPORT, 1)
    decoder = FlowDecoder()
    assert decoder.feed(packet, ROUTER, EXPORT).records == 1
    assert same(drained(decoder)[0], sent)


def test_template_set_padding_longer_than_four_bytes_is_skipped():
    exporter = Exporter(10)
    templates = exporter.template_set(synthetic.IPFIX_IPV4)
    padded = struct.pack(">HH", 2, len(templates) + 6) + templates[4:] + bytes(6)
    sent = synthetic.generate_flows(2)
    packet = exporter.packet([padded, exporter.data_set(synthetic.IPFIX_IPV4, sent, EXPORT)], EXPORT, 2)
    decoder = FlowDecoder()
    info = decoder.feed(packet, ROUTER, EXPORT)
    assert (info.templates, info.records) == (1, 2)
    assert same(drained(decoder)[0], sent)


def test_a_withdrawn_template_no_longer_decodes_its_data():
    exporter = Exporter(10)
    decoder = FlowDecoder()
    feed_all(decoder, exporter.packets(synthetic.generate_flows(2), synthetic.IPFIX_IPV4, EXPORT))
    info = decoder.feed(exporter.packet([exporter.withdrawal_set(300)], EXPORT), ROUTER, EXPORT)
    assert info.templates == 1
    later = feed_all(decoder, exporter.packets(synthetic.generate_flows(2), synthetic.IPFIX_IPV4, EXPORT,
                                               with_template="never"))
    assert (later[0].records, later[0].pending) == (0, 1)
    assert len(drained(decoder)[0]) == 2


def test_withdrawing_all_templates_keeps_the_options_templates():
    exporter = Exporter(10)
    decoder = FlowDecoder()
    decoder.feed(exporter.packet([exporter.template_set(synthetic.IPFIX_IPV4),
                                  exporter.template_set(synthetic.IPFIX_SAMPLING)], EXPORT), ROUTER, EXPORT)
    decoder.feed(exporter.packet([exporter.withdrawal_set(None)], EXPORT), ROUTER, EXPORT)
    options = exporter.data_set(synthetic.IPFIX_SAMPLING, [{"sampling_packet_interval": 1,
                                                            "sampling_packet_space": 9}], EXPORT)
    data = exporter.data_set(synthetic.IPFIX_IPV4, synthetic.generate_flows(1), EXPORT)
    info = decoder.feed(exporter.packet([options, data], EXPORT, 2), ROUTER, EXPORT)
    assert (info.sampling_rate, info.records, info.pending) == (10, 0, 1)


def test_sampling_options_give_interval_plus_space_over_interval():
    exporter = Exporter(10)
    decoder = FlowDecoder()
    info = decoder.feed(exporter.packet([exporter.template_set(synthetic.IPFIX_SAMPLING),
                                         exporter.data_set(synthetic.IPFIX_SAMPLING,
                                                           [{"sampling_packet_interval": 1,
                                                             "sampling_packet_space": 99}], EXPORT)], EXPORT, 1),
                        ROUTER, EXPORT)
    assert info.sampling_rate == 100
    _, got = round_trip(synthetic.generate_flows(3), synthetic.IPFIX_IPV4, exporter, decoder)
    assert [g["sampling_rate"] for g in got] == [100] * 3


def test_flows_naming_a_selector_get_its_rate():
    exporter = Exporter(10)
    decoder = FlowDecoder()
    selector = TemplateSpec(340, ((149, 4), (302, 2), (34, 4)), scope=1)
    decoder.feed(exporter.packet([exporter.template_set(selector),
                                  exporter.data_set(selector, [{"sampler_id": 5, "sampling_interval": 32},
                                                               {"sampler_id": 6, "sampling_interval": 1}], EXPORT)],
                                 EXPORT, 2), ROUTER, EXPORT)
    spec = TemplateSpec(341, synthetic.IPFIX_IPV4.fields + ((302, 2),))
    flows = [dict(f, sampler_id=5 + i % 2) for i, f in enumerate(synthetic.generate_flows(4))]
    _, got = round_trip(flows, spec, exporter, decoder)
    assert [g["sampling_rate"] for g in got] == [32, 1, 32, 1]


def test_sampling_rates_from_options_survive_a_decoder_restart():
    exporter = Exporter(10)
    old = FlowDecoder()
    old.feed(exporter.packet([exporter.template_set(synthetic.IPFIX_SAMPLING),
                              exporter.template_set(synthetic.IPFIX_IPV4),
                              exporter.data_set(synthetic.IPFIX_SAMPLING, [{"sampling_packet_interval": 2,
                                                                            "sampling_packet_space": 6}], EXPORT)],
                             EXPORT, 1), ROUTER, EXPORT)
    new = FlowDecoder()
    new.load_state(old.export_state())
    sent = synthetic.generate_flows(2)
    infos = feed_all(new, exporter.packets(sent, synthetic.IPFIX_IPV4, EXPORT, with_template="never"))
    got = drained(new)[0]
    assert infos[0].lost == 0
    assert same(got, sent)
    assert [g["sampling_rate"] for g in got] == [4, 4]


def test_nat_events_with_a_port_block_go_to_the_nat_batch():
    event = {"event": 13, "time": EXPORT - 1.5, "protocol": 6, "private": "100.64.0.9", "private_port": 0,
             "public": "198.51.100.1", "public_port": 0, "port_block_start": 1024, "port_block_end": 2047,
             "dst": "203.0.113.5", "dst_port": 80}
    flows, nat = drained_from([event], synthetic.IPFIX_NAT)
    assert flows == []
    assert {k: nat[0][k] for k in event} == event


def test_ipv6_nat_events_have_no_destination_unless_exported():
    event = {"event": 4, "time": EXPORT, "protocol": 17, "private": "2001:db8:100::5", "private_port": 5000,
             "public": "2001:db8:ffff::1", "public_port": 40000}
    _, nat = drained_from([event], synthetic.IPFIX_NAT6)
    assert {k: nat[0][k] for k in event} == event
    assert (nat[0]["dst"], nat[0]["dst_port"], nat[0]["port_block_start"]) == ("", -1, -1)


def test_a_sequence_gap_counts_the_missing_records():
    exporter = Exporter(10, sequence=4_000_000_000)
    packets = exporter.packets(synthetic.generate_flows(40), synthetic.IPFIX_IPV4, EXPORT, per_packet=10,
                               with_template="every")
    infos = feed_all(FlowDecoder(), [packets[0], packets[2], packets[3]])
    assert [i.lost for i in infos] == [0, 10, 0]


def test_a_late_packet_is_not_loss_and_does_not_rewind_the_sequence():
    exporter = Exporter(10)
    packets = exporter.packets(synthetic.generate_flows(30), synthetic.IPFIX_IPV4, EXPORT, per_packet=10,
                               with_template="every")
    infos = feed_all(FlowDecoder(), [packets[0], packets[2], packets[1]])
    assert [i.lost for i in infos] == [0, 10, 0]


def test_an_exporter_restart_is_not_loss():
    flows = synthetic.generate_flows(10)
    decoder = FlowDecoder()
    feed_all(decoder, Exporter(10, sequence=7_000_000).packets(flows, synthetic.IPFIX_IPV4, EXPORT))
    infos = feed_all(decoder, Exporter(10, sequence=0).packets(flows, synthetic.IPFIX_IPV4, EXPORT))
    assert [i.lost for i in infos] == [0]


def test_reserved_set_ids_are_skipped():
    exporter = Exporter(10)
    sent = synthetic.generate_flows(1)
    packet = exporter.packet([b"\x00\x05\x00\x08abcd", exporter.template_set(synthetic.IPFIX_IPV4),
                              exporter.data_set(synthetic.IPFIX_IPV4, sent, EXPORT)], EXPORT, 1)
    assert FlowDecoder().feed(packet, ROUTER, EXPORT).records == 1


def test_a_message_length_beyond_the_datagram_is_refused():
    packet = Exporter(10).packets(synthetic.generate_flows(1), synthetic.IPFIX_IPV4, EXPORT)[0]
    with pytest.raises(DecodeError, match="IPFIX message length"):
        FlowDecoder().feed(packet[:-1], ROUTER, EXPORT)


def test_an_options_template_without_scope_fields_is_refused():
    exporter = Exporter(10)
    body = struct.pack(">HHHHH", 400, 1, 0, 34, 4)
    packet = exporter.packet([struct.pack(">HH", 3, 4 + len(body)) + body], EXPORT)
    with pytest.raises(DecodeError, match="options template 400 has 0 scope fields"):
        FlowDecoder().feed(packet, ROUTER, EXPORT)


def test_a_variable_length_field_running_past_its_set_is_refused():
    exporter = Exporter(10)
    spec = TemplateSpec(350, ((8, 4), (82, 65535)))
    data = struct.pack(">HH4sB", 350, 9, b"\x0a\x00\x00\x01", 200)
    packet = exporter.packet([exporter.template_set(spec), data], EXPORT, 1)
    with pytest.raises(DecodeError, match="runs past the end of its set") as error:
        FlowDecoder().feed(packet, ROUTER, EXPORT)
    assert error.value.info.templates == 1


def test_icmpv6_type_and_code_become_the_destination_port_when_ports_are_zero():
    spec = TemplateSpec(360, ((27, 16), (28, 16), (7, 2), (11, 2), (4, 1), (139, 2), (1, 3), (2, 3)))
    flow = dict(synthetic.generate_flows(1, ipv6_share=1.0)[0], protocol=58, src_port=0, dst_port=0,
                icmp_type_code=0x8100, bytes=0x123456, packets=3)
    _, got = round_trip([flow], spec)
    assert (got[0]["dst_port"], got[0]["bytes"], got[0]["packets"]) == (0x8100, 0x123456, 3)
