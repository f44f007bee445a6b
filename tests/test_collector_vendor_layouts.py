"""The vendors' layouts of issue 11 (§2–5), end to end: sent to a running collector, stored as flows."""
import struct

import pytest
import sqlalchemy as sa

from tests import synthetic
from tests.synthetic import Exporter

from .netflow_tools import send
from .test_collector_runtime import T0, count, flows, wait_until
from .test_decode_vendor_layouts import H3C, MIKROTIK, WLC_APPLICATIONS, flow

EXPORT = T0 + 400


def exporter_row(engine):
    with engine.connect() as conn:
        return conn.execute(sa.text("select * from ispflow.exporters where address = '127.0.0.1'")).mappings().one()


def settled(engine, predicate):
    return wait_until(lambda: predicate(exporter_row(engine)))


def test_h3c_flows_with_a_65535_length_field_are_stored_without_errors(collector, db_engine):
    batch = [{**f, ("vlen", 82): b"Ten-GigabitEthernet1/0/%d" % i} for i, f in enumerate(flows(30))]
    send(Exporter(9, boot_time=T0 - 3600).packets(batch, H3C, EXPORT, per_packet=10), collector.ports()[0])
    assert len(collector.wait_for_flows(db_engine, 30)) == 30
    assert settled(db_engine, lambda row: row["flows"] == 30)
    assert exporter_row(db_engine)["decode_errors"] == 0


@pytest.mark.parametrize("shape", ["pan-os zero padding", "aci empty set"])
def test_padding_shapes_are_stored_and_not_counted_as_errors(collector, db_engine, shape):
    exporter = Exporter(9 if shape.startswith("pan") else 10, boot_time=T0 - 3600)
    template = synthetic.V9_IPV4 if exporter.version == 9 else synthetic.IPFIX_IPV4
    batch = flows(20)
    if shape.startswith("pan"):
        packet = exporter.packet([exporter.template_set(template), exporter.data_set(template, batch, EXPORT)], EXPORT)
        packets = [packet + bytes(1500 - len(packet))]
    else:
        end = struct.pack(">HH", 2, 0)
        packets = [exporter.packet([exporter.template_set(template), end], EXPORT),
                   exporter.packet([exporter.data_set(template, batch, EXPORT)], EXPORT, len(batch))]
    send(packets, collector.ports()[0])
    assert len(collector.wait_for_flows(db_engine, 20)) == 20
    assert settled(db_engine, lambda row: row["packets"] == len(packets))
    assert exporter_row(db_engine)["decode_errors"] == 0


def test_records_without_addresses_are_counted_for_the_exporter_and_not_stored(collector, db_engine):
    exporter = Exporter(9, boot_time=T0 - 3600)
    applications = exporter.packets([{"bytes": 10 * i, "packets": i} for i in range(1, 20)], WLC_APPLICATIONS, EXPORT)
    batch = flows(10)
    send(applications + exporter.packets(batch, synthetic.V9_IPV4, EXPORT), collector.ports()[0])
    assert len(collector.wait_for_flows(db_engine, 10)) == 10
    assert settled(db_engine, lambda row: row["dropped"].get("addressless_records") == 19)
    assert count(db_engine, "select count(*) from ispflow.flows where src_addr = '0.0.0.0'") == 0


def test_mikrotik_ipfix_flows_keep_their_duration_and_start_late_by_the_export_delay_at_most(collector, db_engine):
    exporter = Exporter(10, boot_time=EXPORT - 86_400)
    records = [flow(EXPORT - 15, duration=42), flow(EXPORT - 90, duration=600)]
    send([exporter.packet([exporter.template_set(MIKROTIK), exporter.data_set(MIKROTIK, records, EXPORT)],
                          EXPORT, 2)], collector.ports()[0])
    rows = sorted(collector.wait_for_flows(db_engine, 2), key=lambda r: r["ts_start"])
    assert [(r["ts_end"] - r["ts_start"]).total_seconds() for r in rows] == [600, 42]
    assert [r["ts_end"].timestamp() for r in rows] == [EXPORT - 90 + 15, EXPORT]
