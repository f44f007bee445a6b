"""Alert rules: evaluated by the periodic job, one alert per incident, delivered by e-mail,
webhook and signal."""
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from ispflow.commands.alerts import alerts_group
from ispflow.alerts.rules import RuleError, parse_rule, save_rule
from ispflow.alerts.service import evaluate_rules
from ispflow.config import Settings
from tests.sample_flows import flow, insert_exporter, insert_flows
from ispflow.signals import alert_raised

from .alert_receivers import SMTPServer, WebhookReceiver, free_port

NOW = datetime(2026, 1, 10, 12, 0, 30, tzinfo=timezone.utc)
# rates are read up to two minutes before now, in whole minutes: 11:53–11:58 for five minutes
WINDOW_START = datetime(2026, 1, 10, 11, 53, tzinfo=timezone.utc)


@pytest.fixture
def smtp():
    with SMTPServer() as server:
        yield server


@pytest.fixture
def webhook():
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
def settings(database_url, smtp):
    return Settings(DATABASE_URL=database_url, SMTP_HOST="127.0.0.1", SMTP_PORT=smtp.port,
                    SMTP_FROM="noc@isp.example")


def add_rule(engine, **values):
    with engine.begin() as conn:
        return save_rule(conn, parse_rule(values))


def busy_minutes(engine, account="ACC-1", minutes=range(5), megabytes=100, **fields):
    """One flow of ``megabytes`` in each given minute of the window (100 MB/min ≈ 13.3 Mbit/s)."""
    with engine.connect() as conn:
        insert_flows(conn, [flow(WINDOW_START + timedelta(minutes=m, seconds=10), "100.64.0.10", "198.51.100.1",
                                 account=account, bytes=megabytes * 1_000_000, **fields) for m in minutes])
        conn.commit()


def alerts(engine):
    with engine.connect() as conn:
        return conn.execute(sa.text("select * from ispflow.alerts order by id")).all()


def test_a_sustained_subscriber_rate_raises_one_alert_by_email_and_webhook(db_engine, settings, smtp, webhook):
    add_rule(db_engine, name="big-upload", kind="subscriber_rate", threshold_mbps="10", minutes="5",
             email="noc@isp.example", webhook=webhook.url)
    busy_minutes(db_engine)
    assert evaluate_rules(settings, NOW) == "1 rule(s), 1 alert(s) raised"
    [alert] = alerts(db_engine)
    assert alert.incident == "ACC-1" and alert.delivery == {"email": "sent", "webhook": "sent (HTTP 204)"}
    [(recipients, mail)] = smtp.mailbox.messages
    assert recipients == ["noc@isp.example"] and "big-upload" in mail["Subject"]
    assert "Subscriber ACC-1 above 10.0 Mbit/s for 5 min" in mail.get_payload()
    [(path, content_type, body)] = webhook.received
    assert path == "/hooks/ispflow" and content_type == "application/json"
    assert body["rule"] == "big-upload" and body["incident"] == "ACC-1" and body["alert_id"] == alert.id


def test_a_rate_above_the_threshold_in_only_some_minutes_raises_nothing(db_engine, settings):
    add_rule(db_engine, name="big-upload", kind="subscriber_rate", threshold_mbps="10", minutes="5")
    busy_minutes(db_engine, minutes=range(4))
    busy_minutes(db_engine, minutes=[4], megabytes=10)
    assert evaluate_rules(settings, NOW) == "1 rule(s), 0 alert(s) raised"


def test_sampled_flows_count_at_their_stored_volume_which_is_already_scaled(db_engine, settings):
    """The collector stores a 1-in-100 exporter's counters multiplied by 100: 50 MB a minute
    (6.7 Mbit/s) stays under 10 Mbit/s, however high the sampling rate."""
    add_rule(db_engine, name="big-upload", kind="subscriber_rate", threshold_mbps="10", minutes="5")
    busy_minutes(db_engine, megabytes=50, sampling_rate=100)
    assert evaluate_rules(settings, NOW) == "1 rule(s), 0 alert(s) raised"


def test_a_continuing_incident_is_one_alert_whose_last_seen_moves(db_engine, settings):
    add_rule(db_engine, name="big-upload", kind="subscriber_rate", threshold_mbps="10", minutes="5",
             cooldown_minutes="30")
    busy_minutes(db_engine, minutes=range(-1, 6))
    evaluate_rules(settings, NOW)
    evaluate_rules(settings, NOW + timedelta(minutes=1))
    [alert] = alerts(db_engine)
    assert alert.raised_at == NOW and alert.last_seen == NOW + timedelta(minutes=1)


def test_an_incident_back_after_the_cool_down_is_a_new_alert(db_engine, settings):
    add_rule(db_engine, name="big-upload", kind="subscriber_rate", threshold_mbps="10", minutes="5",
             cooldown_minutes="30")
    busy_minutes(db_engine)
    busy_minutes(db_engine, minutes=range(60, 65))
    evaluate_rules(settings, NOW)
    evaluate_rules(settings, NOW + timedelta(minutes=60))
    assert [a.raised_at for a in alerts(db_engine)] == [NOW, NOW + timedelta(minutes=60)]


def test_an_interface_rate_is_watched_per_exporter_and_interface(db_engine, settings):
    add_rule(db_engine, name="uplink", kind="interface_rate", exporter="192.0.2.1", ifindex="7", direction="in",
             threshold_mbps="10", minutes="5")
    with db_engine.connect() as conn:
        exporter_id = insert_exporter(conn, "192.0.2.1")
        conn.commit()
    busy_minutes(db_engine, exporter_id=exporter_id, in_if=7)
    busy_minutes(db_engine, account="ACC-2", exporter_id=exporter_id, in_if=8)
    evaluate_rules(settings, NOW)
    assert [a.incident for a in alerts(db_engine)] == ["192.0.2.1/7/in"]


def test_a_security_finding_of_the_kind_raises_an_alert(db_engine, settings):
    add_rule(db_engine, name="scans", kind="finding", finding_kind="scan")
    hour = NOW.replace(minute=0, second=0) - timedelta(hours=1)
    with db_engine.begin() as conn:
        conn.execute(sa.text("insert into ispflow.security_windows (window_start, window_end) values (:h, :e)"),
                     {"h": hour, "e": hour + timedelta(hours=1)})
        for kind in ("scan", "beacon"):
            conn.execute(sa.text(
                "insert into ispflow.security_findings (kind, window_start, window_end, subject, score, summary, "
                "first_seen, last_seen) values (:k, :h, :e, '100.64.0.70', 3, :s, :h, :h)"),
                {"k": kind, "h": hour, "e": hour + timedelta(hours=1), "s": f"a {kind}"})
    evaluate_rules(settings, NOW)
    assert [(a.incident, a.message) for a in alerts(db_engine)] == [("scan:100.64.0.70:::", "a scan")]


def test_an_exporter_gone_silent_raises_an_alert(db_engine, settings):
    add_rule(db_engine, name="silence", kind="exporter_silent", minutes="15")
    with db_engine.begin() as conn:
        conn.execute(sa.text("insert into ispflow.exporters (address, name, last_flow_at) values "
                             "('192.0.2.1', 'edge-1', :old), ('192.0.2.2', 'edge-2', :recent)"),
                     {"old": NOW - timedelta(minutes=20), "recent": NOW - timedelta(minutes=1)})
    evaluate_rules(settings, NOW)
    assert [a.incident for a in alerts(db_engine)] == ["192.0.2.1"]


def test_a_router_clock_out_of_sync_raises_an_alert(db_engine, settings):
    add_rule(db_engine, name="clocks", kind="router_clock", max_skew_s="2")
    with db_engine.begin() as conn:
        for name, synced, skew in (("r1", True, 0.1), ("r2", False, None), ("r3", True, -8.0)):
            conn.execute(sa.text("insert into ispflow.routers (name, vendor, host, username, secret, ntp_synced, "
                                 "clock_skew_s) values (:n, 'mikrotik', '192.0.2.9', 'u', '\\x00', :s, :k)"),
                         {"n": name, "s": synced, "k": skew})
    evaluate_rules(settings, NOW)
    assert [a.incident for a in alerts(db_engine)] == ["router:r2", "router:r3"]


def test_each_new_alert_is_sent_as_a_signal(db_engine, settings):
    add_rule(db_engine, name="big-upload", kind="subscriber_rate", threshold_mbps="10", minutes="5")
    busy_minutes(db_engine)
    heard = []

    def listener(sender, **data):
        heard.append((sender, data["incident"], data["kind"]))

    with alert_raised.connected_to(listener):
        evaluate_rules(settings, NOW)
        evaluate_rules(settings, NOW + timedelta(seconds=30))
    assert heard == [("big-upload", "ACC-1", "subscriber_rate")]


def test_a_failing_webhook_is_recorded_and_the_e_mail_still_goes(db_engine, settings, smtp):
    add_rule(db_engine, name="big-upload", kind="subscriber_rate", threshold_mbps="10", minutes="5",
             email="noc@isp.example", webhook=f"http://127.0.0.1:{free_port()}/gone")
    busy_minutes(db_engine)
    evaluate_rules(settings, NOW)
    [alert] = alerts(db_engine)
    assert alert.delivery["email"] == "sent" and alert.delivery["webhook"].startswith("failed:")
    assert len(smtp.mailbox.messages) == 1


def test_without_an_smtp_server_configured_the_alert_is_still_stored(db_engine, database_url):
    add_rule(db_engine, name="big-upload", kind="subscriber_rate", threshold_mbps="10", minutes="5",
             email="noc@isp.example")
    busy_minutes(db_engine)
    evaluate_rules(Settings(DATABASE_URL=database_url), NOW)
    assert alerts(db_engine)[0].delivery["email"] == "not configured (ISPFLOW_SMTP_HOST)"


@pytest.mark.parametrize("values, field", [
    ({"kind": "subscriber_rate", "minutes": "5"}, "threshold_mbps"),
    ({"kind": "subscriber_rate", "minutes": "five", "threshold_mbps": "1"}, "minutes"),
    ({"kind": "interface_rate", "exporter": "edge", "ifindex": "1", "minutes": "1", "threshold_mbps": "1"}, "exporter"),
    ({"kind": "finding", "finding_kind": "virus"}, "finding_kind"),
    ({"kind": "nosuch"}, "kind"),
    ({"kind": "router_clock", "email": "noc"}, "email"),
    ({"kind": "router_clock", "webhook": "ftp://x"}, "webhook"),
])
def test_bad_rules_are_refused_with_the_field_named(values, field):
    with pytest.raises(RuleError) as caught:
        parse_rule({"name": "r", **values})
    assert field in caught.value.errors


def test_cli_adds_lists_and_tests_a_rule(runner, db_engine, smtp, webhook, app):
    app.config.update(ISPFLOW_SMTP_HOST="127.0.0.1", ISPFLOW_SMTP_PORT=smtp.port)
    added = runner.invoke(alerts_group, ["add", "uplink", "--kind", "exporter_silent", "--param", "minutes=10",
                                         "--email", "noc@isp.example", "--webhook", webhook.url])
    assert added.exit_code == 0, added.output
    listed = runner.invoke(alerts_group, ["list"])
    assert "uplink: An exporter gone silent (minutes=10); cool-down 60 min; to noc@isp.example" in listed.stdout
    tested = runner.invoke(alerts_group, ["test", "uplink"])
    assert tested.exit_code == 0, tested.output
    assert tested.stdout.splitlines() == ["email: sent", "webhook: sent (HTTP 204)"]
    assert webhook.received[0][2]["incident"] == "test" and len(smtp.mailbox.messages) == 1
    assert alerts(db_engine) == []


def test_cli_test_of_an_unknown_rule_fails_with_one_sentence(runner, db_engine):
    result = runner.invoke(alerts_group, ["test", "nosuch"])
    assert result.exit_code == 2 and "there is no alert rule 'nosuch'" in result.output


def test_cli_rejects_a_parameter_of_another_kind(runner, db_engine):
    result = runner.invoke(alerts_group, ["add", "x", "--kind", "exporter_silent", "--param", "ifindex=3"])
    assert result.exit_code == 2 and "KEY one of minutes" in result.output


def test_an_unknown_smtp_security_mode_is_refused_at_start():
    from ispflow.config import ConfigError

    with pytest.raises(ConfigError, match="ISPFLOW_SMTP_SECURITY is not valid .*none, starttls or tls"):
        Settings.from_env({"ISPFLOW_SMTP_SECURITY": "ssl"})
