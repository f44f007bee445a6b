"""Shared by the decoder tests: drain a decoder into comparable dicts."""
from tests import synthetic
from tests.collector_helpers import check

EXPORT = 1_767_225_900.0
FIELDS = ("src", "dst", "src_port", "dst_port", "protocol", "tcp_flags", "packets", "bytes", "in_if", "out_if",
          "src_as", "dst_as", "start", "end")


def drained(decoder):
    """(flows, NAT events) queued in ``decoder``, as dicts, after checking the batches' shapes."""
    flows, nat = decoder.drain()
    check(flows)
    check(nat)
    return synthetic.flow_dicts(flows), synthetic.nat_dicts(nat)


def same(got, sent, keys=FIELDS):
    return [{k: g[k] for k in keys} for g in got] == [{k: s[k] for k in keys} for s in sent]
