"""The router's API-SSL certificate and SSH host key are pinned; a different one gets no password."""
import pytest

from .fakes.fixtures import TIMEOUT_S
from ispflow.routers.base import PinMismatch, RouterSpec, driver_for, fingerprint

PASSWORD = "pinned-router-password"


def connect(fake, vendor, **overrides):
    values = dict(host="127.0.0.1", port=fake.port, username="netops", password=PASSWORD,
                  collector_host="192.0.2.10", collector_port=2055, timeout=TIMEOUT_S,
                  use_tls=vendor == "mikrotik", interfaces=("GigabitEthernet0/0",) if vendor != "mikrotik" else ())
    values.update(overrides)
    driver = driver_for(vendor)(RouterSpec(**values))
    with driver:
        return driver.presented_key


@pytest.fixture(params=["mikrotik", "cisco_ios"])
def router(request, mikrotik, cisco):
    """start(identity) → a fake presenting that identity's certificate or host key."""
    if request.param == "mikrotik":
        return request.param, lambda identity="router": mikrotik(tls=True, username="netops", password=PASSWORD,
                                                                 identity=identity)
    return request.param, lambda identity="router": cisco("ios", password=PASSWORD, identity=identity)


def test_the_first_connection_reports_what_the_router_presents(router):
    vendor, start = router
    fake = start()
    assert connect(fake, vendor) == fake.key_text


def test_the_pinned_key_is_accepted(router):
    vendor, start = router
    fake = start()
    assert connect(fake, vendor, pinned_key=fake.key_text) == fake.key_text


def test_a_different_key_is_refused_before_the_password_is_sent(router):
    vendor, start = router
    genuine, impostor = start(), start("impostor")
    with pytest.raises(PinMismatch) as failure:
        connect(impostor, vendor, pinned_key=genuine.key_text)
    assert fingerprint(impostor.key_text) in str(failure.value)
    assert fingerprint(genuine.key_text) in str(failure.value)
    assert "re-pins" in str(failure.value)
    received = impostor.commands if vendor == "mikrotik" else impostor.passwords_received + impostor.lines_typed
    assert received == []


def test_a_fingerprint_is_shown_the_way_openssh_and_browsers_show_it(cisco):
    shown = fingerprint(cisco("ios").key_text)
    assert shown.startswith("ssh-rsa SHA256:") and len(shown) == len("ssh-rsa SHA256:") + 43
    assert fingerprint("tls-sha256 " + "ab" * 32) == "TLS certificate SHA256 " + ":".join(["AB"] * 32)
