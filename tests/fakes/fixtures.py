"""pytest fixtures that start router fakes and give tests a Fernet key; import them with *."""
from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from ispflow.config import Settings

from .cisco import FakeCisco
from .setcli import FakeSetCLI
from .routeros import FakeRouterOS

ENCRYPTION_KEY = Fernet.generate_key().decode()
# Fakes answer in milliseconds; a short timeout keeps the "router stops answering" tests fast.
TIMEOUT_S = 1.0


@pytest.fixture(autouse=True)
def encryption_key(monkeypatch):
    """The same credentials key for the panel, the CLI and the rq worker of a test."""
    monkeypatch.setenv("ISPFLOW_ENCRYPTION_KEY", ENCRYPTION_KEY)
    return ENCRYPTION_KEY


@pytest.fixture
def settings(database_url, redis_url):
    return Settings.from_env({}, DATABASE_URL=database_url, REDIS_URL=redis_url, ENCRYPTION_KEY=ENCRYPTION_KEY)


@pytest.fixture
def mikrotik():
    """Start a fake RouterOS API server: ``mikrotik(version="6.40", ntp="disabled", ...)``."""
    started = []

    def start(**kwargs) -> FakeRouterOS:
        fake = FakeRouterOS(**kwargs).start()
        started.append(fake)
        return fake

    yield start
    for fake in started:
        fake.stop()


@pytest.fixture
def cisco():
    """Start a fake Cisco SSH server: ``cisco("xe", ntp="unsynchronized", ...)``."""
    started = []

    def start(platform="ios", **kwargs) -> FakeCisco:
        fake = FakeCisco(platform, **kwargs).start()
        started.append(fake)
        return fake

    yield start
    for fake in started:
        fake.stop()


@pytest.fixture
def setcli():
    """Start a fake Junos or VyOS SSH server: ``setcli("vyos", ntp="unsynchronized", ...)``."""
    started = []

    def start(platform="junos", **kwargs) -> FakeSetCLI:
        fake = FakeSetCLI(platform, **kwargs).start()
        started.append(fake)
        return fake

    yield start
    for fake in started:
        fake.stop()
