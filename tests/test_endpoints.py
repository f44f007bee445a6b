"""HOST:PORT has one rule (ispflow/endpoints.py): an IP address, never a name, then a port; the
settings page, router provisioning and the collector read it the same way."""
import html

import pytest

from ispflow.endpoints import EndpointError, format_endpoint, parse_endpoint
from ispflow.module_settings import ModuleSettings
from ispflow.routers.validation import InvalidRouter, check_collector
from ispflow.testing import csrf_token

from .test_module_settings import post_settings
from .test_routers_web import form_data


@pytest.mark.parametrize("text, expected", [
    ("192.0.2.10:2055", ("192.0.2.10", 2055)),
    (" 192.0.2.10:2055 ", ("192.0.2.10", 2055)),
    ("[2001:DB8::0010]:4739", ("2001:db8::10", 4739)),
    ("[::ffff:192.0.2.1]:9995", ("::ffff:c000:201", 9995)),
])
def test_an_address_and_a_port_are_read_in_canonical_form(text, expected):
    assert parse_endpoint(text) == expected


@pytest.mark.parametrize("text, why", [
    ("collector.isp.net:2055", "an IP address, not a host name"),
    ("collector", "an IP address, not a host name"),
    ("2001:db8::10:2055", "an IPv6 address goes in brackets"),
    ("[fe80::1%eth0]:2055", "an IPv6 zone id is not accepted"),
    ("192.0.2.10 :2055", "spaces or control characters inside"),
    ("192.0.2.10:20\n55", "spaces or control characters inside"),
    ("192.0.2.10:２０５５", "an address, a colon and a port number"),   # non-ASCII digits
    ("192.0.2.10", "an address, a colon and a port number"),
    ("192.0.2.300:2055", "192.0.2.300 is not an IPv4 address"),
    ("192.0.2.10:0", "port 0 is outside 1–65535"),
    ("192.0.2.10:65536", "port 65536 is outside 1–65535"),
    (":2055", "the address is missing"),
])
def test_anything_else_is_refused_with_the_reason_and_an_example(text, why):
    with pytest.raises(EndpointError) as refused:
        parse_endpoint(text)
    assert str(refused.value) == (f"{text!r} is not ADDRESS:PORT ({why}); "
                                  "write it as 192.0.2.10:2055 or [2001:db8::10]:2055")


def test_a_bare_address_takes_the_default_port():
    assert parse_endpoint("2001:db8::10", default_port=2055) == ("2001:db8::10", 2055)
    assert parse_endpoint("192.0.2.10", default_port=2055) == ("192.0.2.10", 2055)


def test_a_listening_socket_may_leave_the_address_and_the_port_open():
    assert parse_endpoint(":2055", listen=True) == ("0.0.0.0", 2055)
    assert parse_endpoint("127.0.0.1:0", listen=True) == ("127.0.0.1", 0)


def test_formatting_reads_back_to_the_same_pair():
    for pair in (("192.0.2.10", 2055), ("2001:db8::10", 4739)):
        assert parse_endpoint(format_endpoint(*pair)) == pair


def test_settings_and_provisioning_refuse_a_host_name_with_the_same_sentence():
    with pytest.raises(ValueError) as settings_refusal:
        ModuleSettings(export_target="collector.isp.net:2055").validated()
    with pytest.raises(InvalidRouter) as router_refusal:
        check_collector("collector.isp.net:2055")
    with pytest.raises(EndpointError) as parser_refusal:
        parse_endpoint("collector.isp.net:2055")
    sentence = str(parser_refusal.value)
    assert str(settings_refusal.value) == f"export_target: {sentence}"
    assert sentence in str(router_refusal.value)


def test_the_settings_page_refuses_what_the_router_page_refuses(auth, client):
    auth.login("admin")
    settings_page = post_settings(client, export_target="collector.isp.net:2055").data.decode()
    token = csrf_token(client.get("/netflow/routers/new"))
    router_page = client.post("/netflow/routers/new", data={**form_data(collector="collector.isp.net:2055"),
                                                             "csrf_token": token}).data.decode()
    sentence = "'collector.isp.net:2055' is not ADDRESS:PORT (an IP address, not a host name)"
    assert sentence in html.unescape(settings_page)
    assert sentence in html.unescape(router_page)
    assert "Settings saved." not in settings_page


def test_settings_store_the_canonical_text(app):
    stored = ModuleSettings(collector_listen=" :2055", export_target="[2001:DB8::10]:2055").validated()
    assert (stored.collector_listen, stored.export_target) == ("0.0.0.0:2055", "[2001:db8::10]:2055")
