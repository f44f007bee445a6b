"""sFlow v5: flow samples become sampled flows, counter samples are kept per interface, loss is
counted from sample sequence numbers, and malformed datagrams raise DecodeError."""
import pytest
from hypothesis import given, strategies as st

from tests import synthetic
from tests.collector_helpers import check
from ispflow.collector.decoder import DecodeError, FlowDecoder
from ispflow.collector.sflow import SFLOW_VERSION_CODE, is_sflow

from . import sflow_packets as sf
from .decode_helpers import EXPORT
from .pcap import Flow, _packet
from .test_decode_fuzz import FUZZ, feed_safely, mutate, MUTATIONS

TCP = Flow("10.0.0.1", "198.51.100.1", 40001, 443, 6, 5, 100, EXPORT)
UDP6 = Flow("2001:db8:10::7", "2001:db8:99::1", 5353, 53, 17, 1, 60, EXPORT)


def decode(*datagrams, decoder=None):
    decoder = decoder or FlowDecoder()
    infos = [decoder.feed(d, "192.0.2.9", EXPORT) for d in datagrams]
    flows, nat = decoder.drain()
    check(flows)
    assert not len(nat)
    return infos, synthetic.flow_dicts(flows)


def test_an_sflow_datagram_is_told_apart_from_netflow():
    assert is_sflow(sf.datagram([]))
    assert not any(is_sflow(p) for p in synthetic.v5_packets(synthetic.generate_flows(1), export_time=EXPORT))


def test_a_raw_ethernet_header_gives_the_ipv4_flow_of_one_sampled_packet():
    infos, got = decode(sf.datagram([sf.flow_sample([sf.raw_header(sf.flow_frame(TCP))], rate=1000)]))
    assert infos[0].version == SFLOW_VERSION_CODE and infos[0].records == 1 and infos[0].sampling_rate == 1000
    flow = got[0]
    assert (flow["src"], flow["dst"], flow["src_port"], flow["dst_port"], flow["protocol"]) == \
        ("10.0.0.1", "198.51.100.1", 40001, 443, 6)
    assert (flow["packets"], flow["bytes"], flow["sampling_rate"]) == (1, TCP.ip_bytes(), 1000)
    assert (flow["tcp_flags"], flow["in_if"], flow["out_if"]) == (0x18, 3, 7)
    assert flow["start"] == flow["end"] == EXPORT


def test_ipv6_udp_headers_are_read():
    _, got = decode(sf.datagram([sf.flow_sample([sf.raw_header(sf.flow_frame(UDP6, 0))])]))
    assert [(g["src"], g["dst"], g["src_port"], g["dst_port"], g["protocol"], g["bytes"], g["tcp_flags"])
            for g in got] == [("2001:db8:10::7", "2001:db8:99::1", 5353, 53, 17, UDP6.ip_bytes(), -1)]


def test_a_vlan_tagged_frame_is_read_through_its_tag():
    _, got = decode(sf.datagram([sf.flow_sample([sf.raw_header(sf.flow_frame(TCP, vlan=42))])]))
    assert (got[0]["src"], got[0]["dst_port"]) == ("10.0.0.1", 443)


def test_a_bare_ip_header_is_read():
    ip_packet = sf.flow_frame(TCP)[14:]
    _, got = decode(sf.datagram([sf.flow_sample([sf.ip_header(ip_packet)])]))
    assert (got[0]["src"], got[0]["src_port"], got[0]["bytes"]) == ("10.0.0.1", 40001, TCP.ip_bytes())


def test_a_truncated_header_keeps_the_frame_length_and_addresses():
    frame = sf.flow_frame(Flow("10.0.0.2", "198.51.100.2", 1, 2, 6, 2, 1400, EXPORT))
    _, got = decode(sf.datagram([sf.flow_sample([sf.raw_header(frame, snap=128)])]))
    assert (got[0]["src"], got[0]["src_port"], got[0]["bytes"]) == ("10.0.0.2", 1, 1400 + 40)


def test_sampled_ipv4_and_ipv6_records_are_flows():
    _, got = decode(sf.datagram([
        sf.flow_sample([sf.sampled_ipv4(1500, 6, "10.0.0.3", "192.0.2.3", 1000, 80, 0x10)], sequence=1),
        sf.flow_sample([sf.sampled_ipv6(1280, 17, "2001:db8::3", "2001:db8::4", 53, 5353)], sequence=2),
    ]))
    assert [(g["src"], g["dst"], g["src_port"], g["dst_port"], g["protocol"], g["bytes"], g["tcp_flags"])
            for g in got] == [("10.0.0.3", "192.0.2.3", 1000, 80, 6, 1500, 0x10),
                              ("2001:db8::3", "2001:db8::4", 53, 5353, 17, 1280, -1)]


def test_expanded_flow_samples_carry_wide_interface_numbers():
    sample = sf.flow_sample([sf.raw_header(sf.flow_frame(TCP))], rate=64, in_if=70_000_000, out_if=9, expanded=True)
    _, got = decode(sf.datagram([sample]))
    assert (got[0]["in_if"], got[0]["out_if"], got[0]["sampling_rate"]) == (70_000_000, 9, 64)


def test_unknown_interfaces_are_absent():
    _, got = decode(sf.datagram([sf.flow_sample([sf.raw_header(sf.flow_frame(TCP))], in_if=0x3FFFFFFF,
                                                out_if=0x80000002)]))
    assert (got[0]["in_if"], got[0]["out_if"]) == (-1, -1)


def test_the_gateway_record_gives_the_autonomous_systems():
    records = [sf.raw_header(sf.flow_frame(TCP)), sf.extended_switch(10, 20), sf.extended_router("192.0.2.254", 24, 16),
               sf.extended_gateway(64500, 64501, 64502, [64502, 3356, 15169])]
    decoder = FlowDecoder()
    _, got = decode(sf.datagram([sf.flow_sample(records)]), decoder=decoder)
    assert (got[0]["src_as"], got[0]["dst_as"]) == (64501, 15169)
    assert decoder.sflow.vlans == {"192.0.2.9": {10, 20}}


def test_an_empty_as_path_means_the_destination_is_in_our_own_as():
    records = [sf.raw_header(sf.flow_frame(TCP)), sf.extended_gateway(64500, 64501, 0, [])]
    _, got = decode(sf.datagram([sf.flow_sample(records)]))
    assert (got[0]["src_as"], got[0]["dst_as"]) == (64501, 64500)


def test_counter_samples_are_kept_per_interface_and_are_not_flows():
    decoder = FlowDecoder()
    infos, got = decode(sf.datagram([sf.counter_sample([sf.interface_counters(3, 1_000, 2_000)]),
                                     sf.counter_sample([sf.interface_counters(4, 5, 6)], sequence=1, source=4)]),
                        sf.datagram([sf.counter_sample([sf.interface_counters(3, 1_500, 2_500)], sequence=2)],
                                    sequence=2), decoder=decoder)
    assert got == [] and [i.records for i in infos] == [0, 0]
    assert decoder.sflow.interfaces[("192.0.2.9", 3)]["in_octets"] == 1_500
    assert decoder.sflow.interfaces[("192.0.2.9", 3)]["out_octets"] == 2_500
    assert decoder.sflow.interfaces[("192.0.2.9", 4)]["if_speed"] == 10**9


def test_non_ip_frames_are_skipped():
    arp = b"\xff" * 6 + b"\x02" * 6 + b"\x08\x06" + bytes(28)
    infos, got = decode(sf.datagram([sf.flow_sample([sf.raw_header(arp)])]))
    assert got == [] and infos[0].records == 0


def test_a_gap_in_sample_sequence_numbers_is_counted_as_lost_samples():
    header = [sf.raw_header(sf.flow_frame(TCP))]
    infos, got = decode(sf.datagram([sf.flow_sample(header, sequence=10)], sequence=1),
                        sf.datagram([sf.flow_sample(header, sequence=11)], sequence=2),
                        sf.datagram([sf.flow_sample(header, sequence=15)], sequence=3))
    assert [i.lost for i in infos] == [0, 0, 3] and len(got) == 3


def test_a_restarted_agent_counts_no_loss():
    header = [sf.raw_header(sf.flow_frame(TCP))]
    infos, _ = decode(sf.datagram([sf.flow_sample(header, sequence=5_000_000)]),
                      sf.datagram([sf.flow_sample(header, sequence=1)]),
                      sf.datagram([sf.flow_sample(header, sequence=2)]))
    assert [i.lost for i in infos] == [0, 0, 0]


def test_each_source_has_its_own_sequence():
    header = [sf.raw_header(sf.flow_frame(TCP))]
    infos, _ = decode(sf.datagram([sf.flow_sample(header, sequence=1, source=1),
                                   sf.flow_sample(header, sequence=1, source=2),
                                   sf.flow_sample(header, sequence=2, source=1)]))
    assert infos[0].lost == 0


def test_a_truncated_datagram_raises_and_keeps_the_samples_before_the_break():
    header = [sf.raw_header(sf.flow_frame(TCP))]
    datagram = sf.datagram([sf.flow_sample(header, sequence=1), sf.flow_sample(header, sequence=2)])
    decoder = FlowDecoder()
    with pytest.raises(DecodeError) as error:
        decoder.feed(datagram[:-20], "192.0.2.9", EXPORT)
    assert "runs past the end" in str(error.value)
    assert error.value.info.records == 1
    assert len(decoder.drain()[0]) == 1


def test_an_unknown_sflow_version_is_refused():
    with pytest.raises(DecodeError, match="sFlow version"):
        FlowDecoder().feed(b"\0\0\0\x04" + bytes(40), "192.0.2.9", EXPORT)


def test_netflow_and_sflow_drain_into_one_batch():
    decoder = FlowDecoder()
    for packet in synthetic.v5_packets(synthetic.generate_flows(2, seed=1), export_time=EXPORT):
        decoder.feed(packet, "192.0.2.1", EXPORT)
    decoder.feed(sf.datagram([sf.flow_sample([sf.raw_header(sf.flow_frame(TCP))])]), "192.0.2.9", EXPORT)
    flows, _ = decoder.drain()
    check(flows)
    assert sorted(d["exporter"] for d in synthetic.flow_dicts(flows)) == ["192.0.2.1", "192.0.2.1", "192.0.2.9"]


SFLOW_VALID = [sf.datagram([sf.flow_sample([sf.raw_header(sf.flow_frame(TCP)), sf.extended_switch(1, 2),
                                            sf.extended_gateway(1, 2, 3, [4, 5])]),
                            sf.flow_sample([sf.sampled_ipv6(100, 6, "2001:db8::1", "2001:db8::2", 1, 2)],
                                           expanded=True),
                            sf.counter_sample([sf.interface_counters(3, 1, 2)])])]


@FUZZ
@given(st.binary(max_size=1500))
def test_any_bytes_after_an_sflow_version(body):
    feed_safely(FlowDecoder(), b"\0\0\0\x05" + body)


@FUZZ
@given(MUTATIONS)
def test_mutated_sflow_datagrams(mutations):
    feed_safely(FlowDecoder(), mutate(SFLOW_VALID[0], mutations))
