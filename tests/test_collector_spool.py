"""The spool keeps batches on disk, in order, within its bound."""
from datetime import datetime, timezone

import numpy as np

from ispflow.collector.attribution import SubscriberDirectory
from ispflow.collector.enrich import enrich
from ispflow.collector.spool import Spool

from .collector_helpers import flow_batch


def batch(n, port=443):
    flows = [dict(src="100.64.0.1", dst="192.0.2.9", start="2026-03-01T00:00:00Z", dst_port=port, bytes=i)
             for i in range(n)]
    return enrich(flow_batch(flows), SubscriberDirectory([("ACC", "svc", "100.64.0.0/24", None, None)]))


def test_a_batch_comes_back_as_it_went_in(tmp_path):
    spool = Spool(tmp_path, 10 << 20)
    original = batch(50)
    assert spool.put(original)
    restored = spool.load(spool.files()[0])
    assert holders(restored) == holders(original)
    assert restored.flows.exporters == original.flows.exporters
    for name in ("ts_start", "src_addr", "dst_port", "bytes", "tcp_flags"):
        assert np.array_equal(getattr(restored.flows, name), getattr(original.flows, name))


def holders(item):
    return [item.subscribers[i] if i >= 0 else None for i in item.subscriber]


def test_a_spooled_batch_carries_only_the_subscribers_it_names(tmp_path):
    since = datetime(2026, 1, 1, tzinfo=timezone.utc)
    directory = SubscriberDirectory([(f"ACC-{i}", "svc", f"100.64.{i // 256}.{i % 256}/32", since, None)
                                     for i in range(5000)])
    flows = [dict(src=src, dst="192.0.2.9", start="2026-03-01T00:00:00Z")
             for src in ("100.64.3.7", "198.51.100.1", "100.64.0.9", "100.64.3.7")]
    original = enrich(flow_batch(flows), directory)
    spool = Spool(tmp_path, 10 << 20)
    spool.put(original)
    restored = spool.load(spool.files()[0])
    assert sorted(restored.subscribers) == [("ACC-775", "svc"), ("ACC-9", "svc")]
    assert holders(restored) == holders(original) == [("ACC-775", "svc"), None, ("ACC-9", "svc"), ("ACC-775", "svc")]


def test_batches_are_replayed_oldest_first(tmp_path):
    spool = Spool(tmp_path, 10 << 20)
    for port in (1, 2, 3):
        spool.put(batch(5, port))
    assert [int(spool.load(p).flows.dst_port[0]) for p in spool.files()] == [1, 2, 3]


def test_a_full_spool_refuses_and_counts_the_batch(tmp_path):
    spool = Spool(tmp_path, 60_000)
    results = [spool.put(batch(200)) for _ in range(5)]
    assert results[0] is True and results[-1] is False
    assert spool.dropped_batches == results.count(False)
    assert spool.size() <= 60_000


def test_half_written_files_are_ignored_after_a_crash(tmp_path):
    (tmp_path / "00000000000000000001-000001.tmp").write_bytes(b"half a batch")
    spool = Spool(tmp_path, 10 << 20)
    assert len(spool) == 0
    assert not list(tmp_path.glob("*.tmp"))


def test_a_file_spooled_before_the_post_nat_columns_replays_without_them(tmp_path):
    from ispflow.collector.spool import pack, unpack

    kind, arrays, header = pack(batch(3))
    older = {name: value for name, value in arrays.items() if not name.startswith("post_nat_")}
    restored = unpack(kind, older, header)
    assert restored.flows.post_nat_src_family.tolist() == [0, 0, 0]
    assert restored.flows.post_nat_dst_port.tolist() == [-1, -1, -1]
    assert restored.flows.post_nat_src_addr.shape == (3, 16)
