"""Bounded decoder state: what one exporter can make the decoder remember is capped and counted."""
import pytest

from tests import synthetic
from ispflow.collector.decoder import FlowDecoder, Limits, StateLimit
from tests.synthetic import Exporter, TemplateSpec

from .decode_helpers import EXPORT, drained

ROUTER = "192.0.2.9"
FLOWS = synthetic.generate_flows(5, seed=4)
LIMITS = Limits(domains_per_exporter=2, templates_per_domain=3, fields_per_template=20, fields_per_exporter=60)


def junk_template(tid, fields=4):
    return TemplateSpec(tid, tuple((1000 + i, 2) for i in range(fields)))


def test_templates_over_the_cap_of_a_domain_are_refused_and_counted():
    decoder, exporter = FlowDecoder(limits=LIMITS), Exporter(9)
    decoder.feed(exporter.packet([exporter.template_set(synthetic.V9_IPV4)], EXPORT), ROUTER, EXPORT)
    info = decoder.feed(exporter.packet([exporter.template_set(*[junk_template(400 + i) for i in range(5)])],
                                        EXPORT), ROUTER, EXPORT)
    assert info.templates == 5
    assert decoder.take_dropped() == {(ROUTER, "refused_templates"): 3}
    assert len(decoder.snapshot()[0][-1]) == 3


def test_a_known_template_is_still_refreshed_and_its_flows_decoded_when_the_domain_is_full():
    decoder, exporter = FlowDecoder(limits=LIMITS), Exporter(9)
    decoder.feed(exporter.packet([exporter.template_set(synthetic.V9_IPV4, junk_template(401), junk_template(402))],
                                 EXPORT), ROUTER, EXPORT)
    decoder.feed(exporter.packet([exporter.template_set(junk_template(403)), exporter.template_set(synthetic.V9_IPV4),
                                  exporter.data_set(synthetic.V9_IPV4, FLOWS, EXPORT)], EXPORT), ROUTER, EXPORT)
    assert len(drained(decoder)[0]) == len(FLOWS)
    assert decoder.take_dropped() == {(ROUTER, "refused_templates"): 1}


def test_a_template_with_too_many_fields_is_refused_and_counted():
    decoder, exporter = FlowDecoder(limits=LIMITS), Exporter(10)
    decoder.feed(exporter.packet([exporter.template_set(junk_template(500, fields=21))], EXPORT), ROUTER, EXPORT)
    assert decoder.take_dropped() == {(ROUTER, "refused_templates_too_long"): 1}
    assert decoder.snapshot()[0][-1] == []


def test_a_domain_over_the_cap_of_its_exporter_is_refused_and_counted():
    decoder = FlowDecoder(limits=LIMITS)
    for domain in (1, 2):
        exporter = Exporter(9, domain=domain)
        decoder.feed(exporter.packets(FLOWS, synthetic.V9_IPV4, EXPORT)[0], ROUTER, EXPORT)
    with pytest.raises(StateLimit):
        decoder.feed(Exporter(9, domain=3).packets(FLOWS, synthetic.V9_IPV4, EXPORT)[0], ROUTER, EXPORT)
    decoder.feed(Exporter(9, domain=3).packets(FLOWS, synthetic.V9_IPV4, EXPORT)[0], "192.0.2.10", EXPORT)
    assert decoder.take_dropped() == {(ROUTER, "refused_domains"): 1}
    assert len(drained(decoder)[0]) == 3 * len(FLOWS)


def test_a_withdrawn_template_frees_its_place():
    decoder, exporter = FlowDecoder(limits=LIMITS), Exporter(10)
    decoder.feed(exporter.packet([exporter.template_set(*[junk_template(400 + i) for i in range(3)])], EXPORT),
                 ROUTER, EXPORT)
    decoder.feed(exporter.packet([exporter.withdrawal_set(400), exporter.template_set(synthetic.IPFIX_IPV4),
                                  exporter.data_set(synthetic.IPFIX_IPV4, FLOWS, EXPORT)], EXPORT), ROUTER, EXPORT)
    assert len(drained(decoder)[0]) == len(FLOWS)
    assert not decoder.take_dropped()


def test_templates_over_the_field_budget_of_an_exporter_are_refused_and_withdrawals_give_it_back():
    decoder = FlowDecoder(limits=LIMITS)
    one, two = Exporter(10, domain=1), Exporter(10, domain=2)
    decoder.feed(one.packet([one.template_set(junk_template(400, 20), junk_template(401, 20))], EXPORT), ROUTER, EXPORT)
    decoder.feed(two.packet([two.template_set(junk_template(400, 20), junk_template(401, 20))], EXPORT), ROUTER, EXPORT)
    assert decoder.take_dropped() == {(ROUTER, "refused_templates"): 1}
    decoder.feed(one.packet([one.withdrawal_set(400), one.withdrawal_set(401)], EXPORT), ROUTER, EXPORT)
    decoder.feed(two.packet([two.template_set(junk_template(401, 20))], EXPORT), ROUTER, EXPORT)
    assert not decoder.take_dropped()
