"""Real exporters' quirks (issue 11 §2–5), as packets built here with exactly their layouts."""
import struct

import pytest

from tests import synthetic
from ispflow.collector.decoder import FlowDecoder
from tests.synthetic import Exporter, TemplateSpec

from .decode_helpers import EXPORT, drained

ROUTER = "192.0.2.7"
FLOWS = synthetic.generate_flows(4, seed=21, start=EXPORT - 120, duration=60)

# H3C NetStream v9: an interface-name-like field of length 65535 among ordinary ones.
H3C = TemplateSpec(1024, ((8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (1, 4), (2, 4), (82, 65535), (22, 4), (21, 4)))
# RouterOS 6.39 IPFIX template 258: uptime-relative times, post-NAT addresses, no systemInitTimeMilliseconds.
MIKROTIK = TemplateSpec(258, ((60, 1), (22, 4), (21, 4), (2, 4), (1, 4), (7, 2), (11, 2), (10, 4), (14, 4),
                              (4, 1), (6, 1), (8, 4), (12, 4), (15, 4), (225, 4), (226, 4)))
# A Cisco wireless controller's application records: no IP address at all.
WLC_APPLICATIONS = TemplateSpec(261, ((95, 4), (56, 6), (1, 8), (2, 8), (22, 4), (21, 4)))


def feed(decoder, packets):
    return [decoder.feed(p, ROUTER, EXPORT) for p in packets]


def test_a_v9_template_with_a_field_of_length_65535_is_read_as_variable_length():
    decoder = FlowDecoder()
    records = [{**f, ("vlen", 82): b"GigabitEthernet1/0/%d" % i} for i, f in enumerate(FLOWS)]
    infos = feed(decoder, Exporter(9).packets(records, H3C, EXPORT, per_packet=2))
    flows, _ = drained(decoder)
    assert sum(i.records for i in infos) == len(FLOWS)
    assert [(f["src"], f["dst"], f["bytes"], f["start"], f["end"]) for f in flows] == [
        (f["src"], f["dst"], f["bytes"], f["start"], f["end"]) for f in FLOWS]


@pytest.mark.parametrize("version", [9, 10])
def test_zero_padding_after_the_last_set_is_not_an_error(version):
    exporter = Exporter(version)
    packet = exporter.packet([exporter.template_set(synthetic.V9_IPV4 if version == 9 else synthetic.IPFIX_IPV4),
                              exporter.data_set(synthetic.V9_IPV4 if version == 9 else synthetic.IPFIX_IPV4,
                                                FLOWS, EXPORT)], EXPORT, len(FLOWS))
    padded = packet + bytes(1400 - len(packet))
    if version == 10:  # the message length covers the padding
        padded = padded[:2] + struct.pack(">H", len(padded)) + padded[4:]
    decoder = FlowDecoder()
    info = decoder.feed(padded, ROUTER, EXPORT)
    assert info.records == len(FLOWS)
    assert len(drained(decoder)[0]) == len(FLOWS)


@pytest.mark.parametrize("version,empty_set", [(9, b"\x00\x00\x00\x00"), (10, b"\x00\x02\x00\x00"),
                                               (10, b"\x00\x02\x00\x04"), (9, b"\x00\x00\x00\x04")])
def test_an_empty_set_at_the_end_of_a_template_message_is_padding(version, empty_set):
    exporter = Exporter(version)
    template = synthetic.V9_IPV4 if version == 9 else synthetic.IPFIX_IPV4
    packet = exporter.packet([exporter.template_set(template), empty_set], EXPORT)
    decoder = FlowDecoder()
    assert decoder.feed(packet, ROUTER, EXPORT).templates == 1
    assert decoder.feed(exporter.packet([exporter.data_set(template, FLOWS, EXPORT)], EXPORT, len(FLOWS)),
                        ROUTER, EXPORT).records == len(FLOWS)


def test_records_without_addresses_are_counted_for_their_exporter_and_not_returned():
    decoder = FlowDecoder()
    exporter = Exporter(9)
    feed(decoder, exporter.packets([{"bytes": 100 * i, "packets": i} for i in range(1, 20)], WLC_APPLICATIONS,
                                   EXPORT))
    feed(decoder, exporter.packets(FLOWS, synthetic.V9_IPV4, EXPORT))
    flows, _ = drained(decoder)
    assert len(flows) == len(FLOWS)
    assert decoder.take_dropped() == {(ROUTER, "addressless_records"): 19}


def test_records_whose_addresses_are_both_zero_are_not_flows():
    decoder = FlowDecoder()
    zeros = [{**f, "src": "0.0.0.0", "dst": "0.0.0.0"} for f in FLOWS[:3]]
    feed(decoder, Exporter(10).packets(zeros + FLOWS, synthetic.IPFIX_IPV4, EXPORT))
    assert len(drained(decoder)[0]) == len(FLOWS)
    assert decoder.take_dropped() == {(ROUTER, "addressless_records"): 3}


# -- MikroTik IPFIX times --------------------------------------------------------------------
BOOT = EXPORT - 86_400.0


def mikrotik(exporter, flows, export_time):
    return exporter.packet([exporter.template_set(MIKROTIK), exporter.data_set(MIKROTIK, flows, export_time)],
                           export_time, len(flows))


def flow(end, duration=30.0):
    return {"src": "10.10.8.197", "dst": "192.168.128.17", "src_port": 123, "dst_port": 123, "protocol": 17,
            "public": "192.168.230.216", "start": end - duration, "end": end, "bytes": 76, "packets": 1}


def times(decoder, packets, at=EXPORT):
    for packet in packets:
        decoder.feed(packet, ROUTER, at)
    return [(f["start"], f["end"]) for f in drained(decoder)[0]]


def test_mikrotik_times_rest_on_the_boot_time_estimated_from_the_earliest_export():
    exporter, decoder = Exporter(10, boot_time=BOOT), FlowDecoder()
    got = times(decoder, [mikrotik(exporter, [flow(EXPORT - 15), flow(EXPORT - 40, 100)], EXPORT)])
    # Late by the smallest export delay seen (15 s); durations exact.
    assert got == [(EXPORT - 30, EXPORT), (EXPORT - 125, EXPORT - 25)]


def test_the_boot_time_estimate_improves_with_a_shorter_export_delay():
    exporter, decoder = Exporter(10, boot_time=BOOT), FlowDecoder()
    times(decoder, [mikrotik(exporter, [flow(EXPORT - 15)], EXPORT)])
    got = times(decoder, [mikrotik(exporter, [flow(EXPORT + 59), flow(EXPORT + 30)], EXPORT + 60)])
    assert got == [(EXPORT + 30, EXPORT + 60), (EXPORT + 1, EXPORT + 31)]


def test_the_boot_time_is_learnt_afresh_after_the_router_reboots():
    decoder = FlowDecoder()
    times(decoder, [mikrotik(Exporter(10, boot_time=BOOT), [flow(EXPORT - 15)], EXPORT)])
    rebooted = Exporter(10, boot_time=EXPORT + 3000)
    got = times(decoder, [mikrotik(rebooted, [flow(EXPORT + 3590)], EXPORT + 3600)])
    assert got == [(EXPORT + 3570, EXPORT + 3600)]  # late by this first delay, 10 s


def test_the_boot_time_estimate_survives_a_restart_through_the_saved_state():
    exporter, decoder = Exporter(10, boot_time=BOOT), FlowDecoder()
    times(decoder, [mikrotik(exporter, [flow(EXPORT - 2)], EXPORT)])
    restarted = FlowDecoder()
    restarted.load_state(decoder.export_state())
    data = exporter.packet([exporter.data_set(MIKROTIK, [flow(EXPORT + 20)], EXPORT + 60)], EXPORT + 60, 1)
    assert times(restarted, [data]) == [(EXPORT - 8, EXPORT + 22)]


def test_a_systeminittime_from_options_data_wins_over_the_estimate():
    exporter, decoder = Exporter(10, boot_time=BOOT), FlowDecoder()
    packet = exporter.packet([exporter.template_set(synthetic.IPFIX_INIT_TIME), exporter.data_set(
        synthetic.IPFIX_INIT_TIME, [{}], EXPORT), exporter.template_set(MIKROTIK),
        exporter.data_set(MIKROTIK, [flow(EXPORT - 15)], EXPORT)], EXPORT, 2)
    assert times(decoder, [packet]) == [(EXPORT - 45, EXPORT - 15)]
