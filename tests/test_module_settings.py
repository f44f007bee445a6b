"""Module settings: validated field by field, stored in the database, edited by admins on a page."""
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from ispflow import module_settings
from ispflow.module_settings import ModuleSettings, months_before
from ispflow.testing import csrf_token

UTC = timezone.utc


def test_defaults_keep_traffic_data_for_the_czech_legal_six_months():
    defaults = ModuleSettings()
    assert (defaults.retention_flows_months, defaults.retention_nat_months) == (6, 6)
    assert defaults.enabled


@pytest.mark.parametrize("field, value, message", [
    ("retention_flows_months", 0, "retention_flows_months: a whole number of months from 1 to 120"),
    ("retention_audit_months", 121, "retention_audit_months: a whole number of months from 1 to 120"),
    ("own_prefixes", ("10.0.0.0/8", "10.0.0.300/32"), "own_prefixes: '10.0.0.300/32' is not a CIDR prefix"),
    ("collector_listen", "0.0.0.0", "collector_listen: '0.0.0.0' is not ADDRESS:PORT"),
    ("export_target", "192.0.2.1:70000", "export_target: '192.0.2.1:70000' is not ADDRESS:PORT (port 70000"),
    ("timezone", "Mars/Olympus", "timezone: 'Mars/Olympus' is not a time zone name"),
])
def test_validation_names_the_bad_field(field, value, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        ModuleSettings(**{field: value}).validated()


def test_prefixes_are_normalised_to_their_network():
    assert ModuleSettings(own_prefixes=(" 100.64.1.7/10 ", "2001:db8::1/32")).validated().own_prefixes \
        == ("100.64.0.0/10", "2001:db8::/32")


@pytest.mark.parametrize("moment, months, expected", [
    (datetime(2026, 11, 22, 12, tzinfo=UTC), 6, datetime(2026, 5, 22, 12, tzinfo=UTC)),
    (datetime(2026, 3, 5, tzinfo=UTC), 6, datetime(2025, 9, 5, tzinfo=UTC)),
    (datetime(2026, 8, 31, tzinfo=UTC), 6, datetime(2026, 2, 28, tzinfo=UTC)),   # clamped to the month's end
    (datetime(2028, 8, 31, tzinfo=UTC), 6, datetime(2028, 2, 29, tzinfo=UTC)),   # leap year
    (datetime(2026, 1, 15, tzinfo=UTC), 13, datetime(2024, 12, 15, tzinfo=UTC)),
])
def test_months_before_counts_calendar_months(moment, months, expected):
    assert months_before(moment, months) == expected


def test_saved_settings_load_back(db_engine):
    wanted = ModuleSettings(enabled=False, retention_flows_months=7, own_prefixes=("198.51.100.0/24",),
                            export_target="192.0.2.10:2055", timezone="Europe/Prague")
    with db_engine.begin() as conn:
        module_settings.save(conn, wanted)
    with db_engine.connect() as conn:
        assert module_settings.load(conn) == wanted


def test_saving_bad_settings_stores_nothing(db_engine):
    with pytest.raises(ValueError):
        with db_engine.begin() as conn:
            module_settings.save(conn, ModuleSettings(retention_flows_months=0))
    with db_engine.connect() as conn:
        assert module_settings.load(conn) == ModuleSettings()


FORM = {
    "enabled": "y", "retention_flows_months": "6", "retention_nat_months": "6", "retention_rollups_months": "13",
    "retention_audit_months": "60", "own_prefixes": "100.64.0.0/10\n203.0.113.0/24", "collector_listen": "0.0.0.0:2055",
    "export_target": "192.0.2.10:2055", "timezone": "Europe/Prague",
}


def post_settings(client, **changes):
    page = client.get("/netflow/settings")
    return client.post("/netflow/settings", data={**FORM, **changes, "csrf_token": csrf_token(page)},
                       follow_redirects=True)


def stored(app):
    from ispflow.extension import db

    with app.app_context():
        return module_settings.load(db.session)


def test_admin_saves_the_settings_through_the_page(auth, client, app):
    auth.login("admin")
    response = post_settings(client, retention_flows_months="7")
    assert b"Settings saved." in response.data
    saved = stored(app)
    assert saved.retention_flows_months == 7
    assert saved.own_prefixes == ("100.64.0.0/10", "203.0.113.0/24")
    assert saved.timezone == "Europe/Prague"


def test_an_unchecked_box_disables_the_module(auth, client, app):
    auth.login("admin")
    data = {k: v for k, v in FORM.items() if k != "enabled"}
    page = client.get("/netflow/settings")
    client.post("/netflow/settings", data={**data, "csrf_token": csrf_token(page)})
    assert stored(app).enabled is False


def test_every_bad_field_is_explained_next_to_it_and_nothing_is_saved(auth, client, app):
    auth.login("admin")
    response = post_settings(client, retention_flows_months="0", retention_nat_months="six",
                             own_prefixes="10.0.0.0/8\nnot-a-prefix", export_target="router", timezone="Nowhere/City")
    page = response.data.decode()
    assert "A whole number of months from 1 to 120." in page
    assert "Not a valid integer value." in page
    assert "&#39;not-a-prefix&#39; is not a CIDR prefix." in page
    assert "&#39;router&#39; is not ADDRESS:PORT (an IP address, not a host name)" in page
    assert "&#39;Nowhere/City&#39; is not a time zone name" in page
    assert b"Settings saved." not in response.data
    assert stored(app) == ModuleSettings()


def test_the_form_shows_the_entered_values_after_an_error(auth, client):
    auth.login("admin")
    page = post_settings(client, retention_flows_months="0", export_target="192.0.2.99:9995").data
    assert b'value="192.0.2.99:9995"' in page


def test_settings_without_a_csrf_token_are_refused(auth, client, app):
    auth.login("admin")
    response = client.post("/netflow/settings", data={**FORM, "retention_flows_months": "9"})
    assert b"The form expired" in response.data
    assert stored(app).retention_flows_months == 6


def test_a_changed_period_is_written_to_the_audit_log(auth, client, db_engine):
    auth.login("admin", username="ada")
    post_settings(client, retention_flows_months="8")
    with db_engine.connect() as conn:
        entry = conn.execute(sa.text(
            "select actor, role, criteria from ispflow.audit_log where action = 'settings'")).one()
    assert (entry.actor, entry.role) == ("ada", "admin")
    assert entry.criteria["retention_flows_months"] == 8
