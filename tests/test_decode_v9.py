"""NetFlow v9 (RFC 3954): templates, options, sampling, held data, NAT events, sequence numbers."""
import pytest

from tests import synthetic
from ispflow.collector.decoder import DecodeError, FlowDecoder
from tests.synthetic import Exporter, TemplateSpec

from .decode_helpers import EXPORT, drained, same

ROUTER = "192.0.2.1"


def feed_all(decoder, packets, exporter=ROUTER, at=EXPORT):
    return [decoder.feed(p, exporter, at) for p in packets]


def test_ipv4_flows_round_trip_every_field():
    sent = synthetic.generate_flows(120, seed=9)
    decoder = FlowDecoder()
    infos = feed_all(decoder, Exporter(9).packets(sent, synthetic.V9_IPV4, EXPORT))
    flows, _ = drained(decoder)
    assert sum(i.records for i in infos) == 120
    assert infos[0].templates == 1
    assert same(flows, sent)


def test_ipv6_flows_round_trip_every_field():
    sent = synthetic.generate_flows(50, seed=4, ipv6_share=1.0)
    decoder = FlowDecoder()
    feed_all(decoder, Exporter(9).packets(sent, synthetic.V9_IPV6, EXPORT))
    flows, _ = drained(decoder)
    assert ":" in flows[0]["src"]
    assert same(flows, sent)


def test_times_are_relative_to_the_header_uptime_even_after_it_wrapped():
    flow = dict(synthetic.generate_flows(1)[0], start=EXPORT - 30.125, end=EXPORT - 1.0)
    decoder = FlowDecoder()
    feed_all(decoder, Exporter(9, boot_time=EXPORT - 60 * 86400).packets([flow], synthetic.V9_IPV4, EXPORT))
    flows, _ = drained(decoder)
    assert (flows[0]["start"], flows[0]["end"]) == (EXPORT - 30.125, EXPORT - 1.0)


def test_reduced_size_integers_and_unknown_fields_decode():
    spec = TemplateSpec(400, ((8, 4), (12, 4), (15, 4), (999, 7), (1, 3), (2, 3), (10, 2), (14, 2), (7, 2), (11, 2),
                              (4, 1), (16, 2), (17, 3), (22, 4), (21, 4)))
    sent = [dict(synthetic.generate_flows(1, seed=1)[0], bytes=0xABCDEF, packets=70000, in_if=3, out_if=65000,
                 src_as=65001, dst_as=4_200_000)]
    decoder = FlowDecoder()
    feed_all(decoder, Exporter(9).packets(sent, spec, EXPORT))
    flows, _ = drained(decoder)
    assert same(flows, sent, ("src", "dst", "bytes", "packets", "in_if", "out_if", "src_as", "dst_as", "start"))
    assert flows[0]["tcp_flags"] == -1


def test_octet_total_and_post_counts_are_used_when_delta_counts_are_absent():
    spec = TemplateSpec(401, ((8, 4), (12, 4), (23, 4), (24, 4)))
    sent = [dict(synthetic.generate_flows(1)[0], bytes=777, packets=3)]
    decoder = FlowDecoder()
    feed_all(decoder, Exporter(9).packets(sent, spec, EXPORT))
    flows, _ = drained(decoder)
    assert (flows[0]["bytes"], flows[0]["packets"]) == (777, 3)


def test_icmp_type_and_code_become_the_destination_port_when_ports_are_zero():
    spec = TemplateSpec(402, ((8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (32, 2)))
    flow = dict(synthetic.generate_flows(1)[0], protocol=1, src_port=0, dst_port=0, icmp_type_code=0x0303)
    decoder = FlowDecoder()
    feed_all(decoder, Exporter(9).packets([flow], spec, EXPORT))
    flows, _ = drained(decoder)
    assert flows[0]["dst_port"] == 0x0303


def test_data_before_its_template_is_held_and_decoded_when_the_template_comes():
    sent = synthetic.generate_flows(10, seed=2)
    exporter = Exporter(9)
    decoder = FlowDecoder()
    data_only = exporter.packets(sent, synthetic.V9_IPV4, EXPORT, with_template="never")
    held = feed_all(decoder, data_only)
    assert (held[0].records, held[0].pending) == (0, 1)
    assert drained(decoder)[0] == []
    template = exporter.packet([exporter.template_set(synthetic.V9_IPV4)], EXPORT)
    info = decoder.feed(template, ROUTER, EXPORT + 1)
    assert info.records == 10
    assert decoder.stats["held_records"] == 10
    assert same(drained(decoder)[0], sent)


def test_held_data_expires_after_the_ttl_and_is_counted():
    exporter = Exporter(9)
    decoder = FlowDecoder(pending_ttl=5.0)
    feed_all(decoder, exporter.packets(synthetic.generate_flows(5), synthetic.V9_IPV4, EXPORT, with_template="never"))
    decoder.feed(exporter.packet([exporter.template_set(synthetic.V9_IPV6)], EXPORT), ROUTER, EXPORT + 6)
    info = decoder.feed(exporter.packet([exporter.template_set(synthetic.V9_IPV4)], EXPORT), ROUTER, EXPORT + 7)
    assert info.records == 0
    assert decoder.stats["expired_pending_records"] >= 1
    assert decoder.stats["held_sets"] == 0


def test_held_data_is_bounded_per_template():
    exporter = Exporter(9)
    decoder = FlowDecoder(max_pending_records=10)
    packets = exporter.packets(synthetic.generate_flows(40), synthetic.V9_IPV4, EXPORT, per_packet=5,
                               with_template="never")
    feed_all(decoder, packets)
    assert decoder.stats["dropped_pending_sets"] >= 1
    assert decoder.stats["held_bytes"] <= 10 * 16


def test_a_redefined_template_replaces_the_old_one():
    exporter = Exporter(9)
    decoder = FlowDecoder()
    first = synthetic.generate_flows(3, seed=1)
    second = synthetic.generate_flows(3, seed=2, ipv6_share=1.0)
    feed_all(decoder, exporter.packets(first, synthetic.V9_IPV4, EXPORT))
    ipv6_as_256 = TemplateSpec(256, synthetic.V9_IPV6.fields)
    feed_all(decoder, exporter.packets(second, ipv6_as_256, EXPORT))
    assert same(drained(decoder)[0], first + second)


def test_a_template_defined_back_as_it_was_before_takes_effect_again():
    exporter = Exporter(9)
    decoder = FlowDecoder()
    ipv6_as_256 = TemplateSpec(256, synthetic.V9_IPV6.fields)
    rounds = [(synthetic.generate_flows(3, seed=seed, ipv6_share=share), spec)
              for seed, share, spec in ((1, 0.0, synthetic.V9_IPV4), (2, 1.0, ipv6_as_256),
                                        (3, 0.0, synthetic.V9_IPV4), (4, 0.0, synthetic.V9_IPV4))]
    for flows, spec in rounds:
        feed_all(decoder, exporter.packets(flows, spec, EXPORT))
    def by_start(flows):
        return sorted(flows, key=lambda f: f["start"])

    assert same(by_start(drained(decoder)[0]), by_start([f for flows, _ in rounds for f in flows]))


def options_packet(exporter, spec, records):
    return exporter.packet([exporter.template_set(spec), exporter.data_set(spec, records, EXPORT)], EXPORT)


def test_a_sampler_options_record_gives_the_rate_of_later_flows():
    exporter = Exporter(9)
    decoder = FlowDecoder()
    sampler = {"sampler_id": 3, "sampler_mode": 2, "sampler_random_interval": 1000}
    info = decoder.feed(options_packet(exporter, synthetic.V9_SAMPLER_OPTIONS, [sampler]), ROUTER, EXPORT)
    assert (info.sampling_rate, info.templates, info.records) == (1000, 1, 0)
    feed_all(decoder, exporter.packets(synthetic.generate_flows(4), synthetic.V9_IPV4, EXPORT))
    assert [f["sampling_rate"] for f in drained(decoder)[0]] == [1000] * 4


def test_a_sampling_interval_options_record_gives_the_rate_of_later_flows():
    exporter = Exporter(9)
    decoder = FlowDecoder()
    options = {"sampling_interval": 20, "sampling_algorithm": 2}
    decoder.feed(options_packet(exporter, synthetic.V9_SAMPLING_OPTIONS, [options]), ROUTER, EXPORT)
    feed_all(decoder, exporter.packets(synthetic.generate_flows(2), synthetic.V9_IPV4, EXPORT))
    assert [f["sampling_rate"] for f in drained(decoder)[0]] == [20, 20]


def test_flows_naming_their_sampler_get_that_samplers_rate():
    exporter = Exporter(9)
    decoder = FlowDecoder()
    samplers = [{"sampler_id": 1, "sampler_random_interval": 10}, {"sampler_id": 2, "sampler_random_interval": 250}]
    decoder.feed(options_packet(exporter, synthetic.V9_SAMPLER_OPTIONS, samplers), ROUTER, EXPORT)
    spec = TemplateSpec(410, synthetic.V9_IPV4.fields + ((48, 1),))
    flows = [dict(f, sampler_id=i % 2 + 1) for i, f in enumerate(synthetic.generate_flows(4))]
    feed_all(decoder, exporter.packets(flows, spec, EXPORT))
    assert [f["sampling_rate"] for f in drained(decoder)[0]] == [10, 250, 10, 250]


def test_a_sampling_interval_in_the_data_record_applies_to_it():
    spec = TemplateSpec(411, synthetic.V9_IPV4.fields + ((34, 4),))
    flows = [dict(f, sampling_interval=64) for f in synthetic.generate_flows(2)]
    decoder = FlowDecoder()
    info = feed_all(decoder, Exporter(9).packets(flows, spec, EXPORT))[0]
    assert info.sampling_rate == 64
    assert [f["sampling_rate"] for f in drained(decoder)[0]] == [64, 64]


def test_nat_events_go_to_the_nat_batch():
    event = {"event": 4, "time": EXPORT - 2.5, "private": "100.64.3.4", "private_port": 51000,
             "public": "198.51.100.7", "public_port": 20001, "dst": "203.0.113.80", "dst_port": 443, "protocol": 6}
    decoder = FlowDecoder()
    info = feed_all(decoder, Exporter(9).packets([event], synthetic.V9_NAT, EXPORT))[0]
    flows, nat = drained(decoder)
    assert (info.records, flows) == (1, [])
    assert {k: nat[0][k] for k in event} == event
    assert (nat[0]["port_block_start"], nat[0]["ts_end"]) == (-1, -1)


def test_lost_packets_are_estimated_in_flows():
    exporter = Exporter(9, sequence=10)
    decoder = FlowDecoder()
    packets = exporter.packets(synthetic.generate_flows(100), synthetic.V9_IPV4, EXPORT, per_packet=10,
                               with_template="every")
    infos = feed_all(decoder, packets[:5] + packets[8:])
    assert [i.lost for i in infos] == [0, 0, 0, 0, 0, 30, 0]


def test_packets_of_templates_only_do_not_lower_the_estimate():
    exporter = Exporter(9)
    decoder = FlowDecoder()
    decoder.feed(exporter.packet([exporter.template_set(synthetic.V9_IPV4)], EXPORT), ROUTER, EXPORT)
    packets = exporter.packets(synthetic.generate_flows(60), synthetic.V9_IPV4, EXPORT, per_packet=20,
                               with_template="never")
    infos = feed_all(decoder, [packets[0], packets[2]])
    assert [i.lost for i in infos] == [0, 20]


def test_an_exporter_restart_is_not_loss():
    decoder = FlowDecoder()
    flows = synthetic.generate_flows(20)
    feed_all(decoder, Exporter(9, sequence=90_000).packets(flows, synthetic.V9_IPV4, EXPORT))
    infos = feed_all(decoder, Exporter(9, sequence=0).packets(flows, synthetic.V9_IPV4, EXPORT))
    assert [i.lost for i in infos] == [0]


def test_templates_survive_a_decoder_restart():
    exporter = Exporter(9, domain=77)
    old = FlowDecoder()
    old.feed(exporter.packet([exporter.template_set(synthetic.V9_IPV4)], EXPORT), ROUTER, EXPORT)
    new = FlowDecoder()
    new.load_state(old.export_state())
    sent = synthetic.generate_flows(5)
    info = feed_all(new, exporter.packets(sent, synthetic.V9_IPV4, EXPORT, with_template="never"))[0]
    assert (info.domain, info.records, info.pending, info.lost) == (77, 5, 0, 0)
    assert same(drained(new)[0], sent)


def test_templates_are_kept_per_source_id():
    decoder = FlowDecoder()
    one, two = Exporter(9, domain=1), Exporter(9, domain=2)
    decoder.feed(one.packet([one.template_set(synthetic.V9_IPV4)], EXPORT), ROUTER, EXPORT)
    info = feed_all(decoder, two.packets(synthetic.generate_flows(3), synthetic.V9_IPV4, EXPORT,
                                         with_template="never"))[0]
    assert (info.records, info.pending) == (0, 1)


def test_a_template_with_no_fields_is_refused():
    exporter = Exporter(9)
    packet = exporter.packet([b"\x00\x00\x00\x08\x01\x00\x00\x00"], EXPORT)
    with pytest.raises(DecodeError, match="template 256 has no fields"):
        FlowDecoder().feed(packet, ROUTER, EXPORT)


def test_a_set_shorter_than_its_header_is_refused():
    exporter = Exporter(9)
    packet = exporter.packet([b"\x01\x00\x00\x02"], EXPORT)
    with pytest.raises(DecodeError, match="less than its own header"):
        FlowDecoder().feed(packet, ROUTER, EXPORT)


def test_a_truncated_set_is_refused_but_earlier_sets_are_kept():
    exporter = Exporter(9)
    sent = synthetic.generate_flows(3)
    good = exporter.template_set(synthetic.V9_IPV4) + exporter.data_set(synthetic.V9_IPV4, sent, EXPORT)
    packet = exporter.packet([good, exporter.data_set(synthetic.V9_IPV4, sent, EXPORT)], EXPORT)[:-7]
    decoder = FlowDecoder()
    with pytest.raises(DecodeError, match="runs past the end of the packet") as error:
        decoder.feed(packet, ROUTER, EXPORT)
    assert (error.value.info.records, error.value.info.templates) == (3, 1)
    assert same(drained(decoder)[0], sent)


def test_a_reserved_template_id_is_refused():
    packet = Exporter(9).packet([b"\x00\x00\x00\x0c\x00\x10\x00\x01\x00\x08\x00\x04"], EXPORT)
    with pytest.raises(DecodeError, match="template id 16 is reserved"):
        FlowDecoder().feed(packet, ROUTER, EXPORT)


def test_a_bad_saved_state_is_refused_and_changes_nothing():
    decoder = FlowDecoder()
    with pytest.raises(DecodeError, match="saved decoder state"):
        decoder.load_state(b'{"format": 1, "domains": [{"exporter": "x"}]}')
    assert decoder.export_state() == FlowDecoder().export_state()
