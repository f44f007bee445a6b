"""No value reaches a router's command line or API unless it fits the strict grammar.

Each hostile value of the corpus is put where a person or a stored row could put it (the router's
fields, the module setting ``export_target``, the environment) and a provisioning job is run
against both drivers' fakes: the job fails saying nothing was sent, and the fake received nothing.
"""
import json

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from .fakes.fixtures import TIMEOUT_S
from ispflow import module_settings
from ispflow.routers import inventory, runs
from ispflow.endpoints import parse_endpoint
from ispflow.routers.base import RouterSpec, UnsafeValue
from ispflow.routers.models import Router
from ispflow.routers.validation import InvalidRouter

PASSWORD = "a-router-password"
SMUGGLED = "username bd privilege 15 secret P"

COLLECTORS = [
    f"[fe80::1%x\n{SMUGGLED}]:2055",
    f"[fe80::1%eth0]:2055",
    f"192.0.2.10\n{SMUGGLED}:2055",
    "192.0.2.10 :2055",
    "192.0.2.10:2055\nreload",
    "192.0.2.10:20\u200b55",
]
NAMES = [
    f"GigabitEthernet0/0\n{SMUGGLED}",
    "GigabitEthernet0/0\r\nend",
    "Gi0/0 reload",
    "Gi0/0\x1b[2J",
    "Gi0/0\u2028reload",
    "ether1 =disabled=yes",
]
USERNAMES = [f"netops\n{SMUGGLED}", "net\rops", "net ops", "=password=x"]
HOSTS = ["fe80::1%lo", "127.0.0.1\nfoo", "127.0.0.1 "]


@pytest.fixture
def db(db_engine):
    with Session(db_engine, expire_on_commit=False) as session:
        yield session


@pytest.fixture(params=["mikrotik", "cisco_xe"])
def target(request, mikrotik, cisco):
    """A started fake and the router fields that reach it."""
    if request.param == "mikrotik":
        fake = mikrotik(password=PASSWORD)
        return fake, fake.commands, dict(vendor="mikrotik", interfaces="all", username="admin")
    fake = cisco("xe", username="netops", password=PASSWORD)
    return fake, fake.lines_typed, dict(vendor="cisco_xe", interfaces="GigabitEthernet0/0", username="netops")


def stored_router(db, settings, fake, fields, **raw):
    """A valid router, then ``raw`` written straight into its row as an old or tampered row would hold."""
    router = inventory.add_router(db, settings, name="edge-1", host="127.0.0.1", port=fake.port, password=PASSWORD,
                                  collector="192.0.2.10:2055", timeout_s=TIMEOUT_S, **fields)
    db.commit()
    if raw:
        db.execute(sa.update(Router).where(Router.id == router.id).values(**raw))
        db.commit()
    db.expire_all()
    return db.get(Router, router.id)


def provision(db, settings, router):
    job = runs.create_job(db, router, "provision", requested_by="tester")
    db.commit()
    return runs.run_job(settings.DATABASE_URL, settings, job.id)


def assert_refused_and_nothing_sent(job, received):
    assert job.state == "failed"
    assert "Nothing was sent to the router" in job.message
    assert received == []


@pytest.mark.parametrize("collector", COLLECTORS)
def test_a_hostile_stored_collector_sends_nothing(db, settings, target, collector):
    fake, received, fields = target
    router = stored_router(db, settings, fake, fields, collector=collector)
    job = provision(db, settings, router)
    assert job.state == "failed"
    assert received == []


@pytest.mark.parametrize("collector", COLLECTORS)
def test_a_hostile_export_target_setting_sends_nothing(db, settings, target, collector):
    fake, received, fields = target
    router = stored_router(db, settings, fake, fields, collector=None)
    db.execute(sa.text("insert into ispflow.settings (key, value, updated_at) values ('module', cast(:v as jsonb), now())"),
               {"v": json.dumps({"export_target": collector})})
    db.commit()
    job = provision(db, settings, router)
    assert job.state == "failed"
    assert received == []


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("column", ["interfaces", "source_interface"])
def test_a_hostile_interface_name_sends_nothing(db, settings, target, column, name):
    fake, received, fields = target
    router = stored_router(db, settings, fake, fields, **{column: name})
    assert_refused_and_nothing_sent(provision(db, settings, router), received)


@pytest.mark.parametrize("username", USERNAMES)
def test_a_hostile_username_sends_nothing(db, settings, target, username):
    fake, received, fields = target
    router = stored_router(db, settings, fake, fields, username=username)
    assert_refused_and_nothing_sent(provision(db, settings, router), received)


@pytest.mark.parametrize("host", HOSTS)
def test_a_hostile_management_host_sends_nothing(db, settings, target, host):
    fake, received, fields = target
    router = stored_router(db, settings, fake, fields, host=host)
    assert_refused_and_nothing_sent(provision(db, settings, router), received)


def test_a_hostile_previous_collector_is_never_sent(db, settings, target):
    fake, received, fields = target
    router = stored_router(db, settings, fake, fields, provisioned_collector=f"[fe80::1%x\n{SMUGGLED}]:2055")
    provision(db, settings, router)
    assert received and not any("fe80" in str(item) or "privilege" in str(item) for item in received)


def test_a_password_with_a_control_character_is_never_sent(settings):
    with pytest.raises(UnsafeValue, match="password"):
        RouterSpec(host="127.0.0.1", username="admin", password=f"pw\n{SMUGGLED}",
                   collector_host="192.0.2.10", collector_port=2055)


@pytest.mark.parametrize("collector", COLLECTORS)
def test_the_router_form_refuses_a_hostile_collector(db, settings, collector):
    with pytest.raises(InvalidRouter) as failure:
        inventory.add_router(db, settings, name="edge-1", vendor="mikrotik", host="192.0.2.1", username="admin",
                             password=PASSWORD, collector=collector)
    assert failure.value.field == "collector"


@pytest.mark.parametrize("name", NAMES)
def test_the_router_form_refuses_a_hostile_interface_name(db, settings, name):
    with pytest.raises(InvalidRouter) as failure:
        inventory.add_router(db, settings, name="edge-1", vendor="cisco_ios", host="192.0.2.1", username="netops",
                             password=PASSWORD, interfaces=name, collector="192.0.2.10:2055")
    assert failure.value.field == "interfaces"


@pytest.mark.parametrize("username", USERNAMES)
def test_the_router_form_refuses_a_hostile_username(db, settings, username):
    with pytest.raises(InvalidRouter) as failure:
        inventory.add_router(db, settings, name="edge-1", vendor="mikrotik", host="192.0.2.1", username=username,
                             password=PASSWORD, collector="192.0.2.10:2055")
    assert failure.value.field == "username"


@pytest.mark.parametrize("collector", COLLECTORS)
def test_the_module_settings_refuse_a_hostile_export_target(collector):
    with pytest.raises(ValueError, match="export_target"):
        module_settings.ModuleSettings(export_target=collector).validated()


def test_the_collector_address_parser_refuses_an_ipv6_zone_id():
    with pytest.raises(ValueError, match="zone id"):
        parse_endpoint("[fe80::1%eth0]:2055")
    with pytest.raises(ValueError, match="control characters"):
        parse_endpoint(f"[fe80::1%x\n{SMUGGLED}]:2055")
