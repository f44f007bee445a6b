"""The collector's bulk attribution: the most specific prefix held at the flow's start, IPv4 and
IPv6 alike, in one pass over a batch."""
from datetime import datetime, timezone

import numpy as np

from ispflow.collector.attribution import SubscriberDirectory
from ispflow.collector.enrich import DIRECTION_IN, DIRECTION_NONE, DIRECTION_OUT

from .collector_helpers import flow_batch

JAN, MAR, MAY = (datetime(2026, m, 1, tzinfo=timezone.utc) for m in (1, 3, 5))

DIRECTORY = SubscriberDirectory([
    ("POOL", "v6", "2001:db8:10::/48", JAN, None),
    ("SITE", "v6", "2001:db8:10:20::/64", JAN, MAR),        # the /64 changed hands on 1 March
    ("SITE-NEW", "v6", "2001:db8:10:20::/64", MAR, None),
    ("HOST", "v6", "2001:db8:10:20::7/128", JAN, None),     # one address of that /64, held by another
    ("LOW", "v6", "2001:db8:10:20:0:0:1:0/112", JAN, None),  # a prefix longer than 64 bits, not a host
    ("V4", "v4", "198.51.100.0/24", JAN, None),
], own_prefixes=["2001:db8:ff::/48"])


def holders(flows):
    batch = flow_batch(flows)
    subscriber, direction, subscribers = DIRECTORY.attribute(batch)
    names = [subscribers[i][0] if i >= 0 else None for i in subscriber]
    return list(zip(names, direction.tolist()))


def at(month, src, dst="2a00:1450::1"):
    return dict(src=src, dst=dst, start=month.isoformat().replace("+00:00", "Z"))


def test_the_most_specific_ipv6_prefix_held_at_the_start_wins():
    assert holders([
        at(MAY, "2001:db8:10:99::1"),          # only the /48
        at(MAY, "2001:db8:10:20::5"),          # the /64, its holder since March
        at(JAN, "2001:db8:10:20::5"),          # the /64's earlier holder
        at(MAY, "2001:db8:10:20::7"),          # the /128 inside it
        at(MAY, "2001:db8:10:20::1:42"),       # the /112 inside it
        at(MAY, "2001:db8:11::1"),             # nobody's
    ]) == [("POOL", DIRECTION_OUT), ("SITE-NEW", DIRECTION_OUT), ("SITE", DIRECTION_OUT),
           ("HOST", DIRECTION_OUT), ("LOW", DIRECTION_OUT), (None, DIRECTION_NONE)]


def test_the_subscriber_side_of_an_ipv6_flow_gives_its_direction():
    assert holders([at(MAY, "2a00:1450::1", "2001:db8:10:20::7")]) == [("HOST", DIRECTION_IN)]


def test_own_ipv6_prefixes_give_a_direction_without_an_account():
    assert holders([at(MAY, "2001:db8:ff:1::9"), at(MAY, "2a00:1450::1", "2001:db8:ff::2")]) == [
        (None, DIRECTION_OUT), (None, DIRECTION_IN)]


def test_ipv4_and_ipv6_flows_of_one_batch_are_attributed_alike():
    assert holders([at(MAY, "198.51.100.9", "203.0.113.1"), at(MAY, "2001:db8:10::1")]) == [
        ("V4", DIRECTION_OUT), ("POOL", DIRECTION_OUT)]


def test_many_ipv6_subscribers_each_get_their_own_flows():
    directory = SubscriberDirectory([(f"A{i}", "v6", f"2001:db8:{i:x}::/48", JAN, None) for i in range(3000)])
    flows = [at(MAY, f"2001:db8:{i:x}:1::{i:x}") for i in range(0, 3000, 7)]
    subscriber, _, subscribers = directory.attribute(flow_batch(flows))
    assert [subscribers[i][0] for i in subscriber] == [f"A{i}" for i in range(0, 3000, 7)]
    assert np.all(subscriber >= 0)
