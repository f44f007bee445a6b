"""``ispflow exporters list|trust|untrust``: the same trust as the status page, audited as the shell user."""
import sqlalchemy as sa

from ispflow.commands.collector import exporters_list, exporters_trust, exporters_untrust


def audit(db_engine):
    with db_engine.connect() as conn:
        return conn.execute(sa.text("select action, actor, role, criteria from ispflow.audit_log order by id")).all()


def test_trust_registers_and_trusts_an_address_and_audits_it(runner, db_engine):
    result = runner.invoke(exporters_trust, ["192.0.2.5"])
    assert result.exit_code == 0 and "Trusted 192.0.2.5" in result.output
    [entry] = audit(db_engine)
    assert entry.action == "exporter.trust" and entry.actor.startswith("cli:") and entry.role == "admin"
    assert "yes (trusted)" in runner.invoke(exporters_list).output


def test_trusting_twice_says_so_and_audits_once(runner, db_engine):
    runner.invoke(exporters_trust, ["192.0.2.5"])
    assert "was trusted already" in runner.invoke(exporters_trust, ["192.0.2.5"]).output
    assert len(audit(db_engine)) == 1


def test_untrust_is_audited_and_the_list_shows_the_drops(runner, db_engine):
    runner.invoke(exporters_trust, ["2001:db8::5"])
    result = runner.invoke(exporters_untrust, ["2001:db8::5"])
    assert "Untrusted 2001:db8::5" in result.output
    assert [e.action for e in audit(db_engine)] == ["exporter.trust", "exporter.untrust"]
    assert "NO (untrusted)" in runner.invoke(exporters_list).output


def test_untrusting_a_provisioned_router_says_its_flows_are_still_stored(runner, db_engine):
    with db_engine.begin() as conn:
        conn.execute(sa.text("insert into ispflow.routers (name, vendor, host, username, secret, provisioned_at) "
                             "values ('edge', 'mikrotik', '192.0.2.6', 'admin', '\\x00', now())"))
    runner.invoke(exporters_trust, ["192.0.2.6"])
    assert "provisioned router 'edge'" in runner.invoke(exporters_untrust, ["192.0.2.6"]).output
    assert "yes (router edge)" in runner.invoke(exporters_list).output


def test_a_bad_address_is_one_sentence(runner, db_engine):
    result = runner.invoke(exporters_trust, ["router-1"])
    assert result.exit_code != 0 and "'router-1' is not an IP address." in result.output
    assert audit(db_engine) == []


def test_an_ipv4_mapped_address_is_trusted_as_the_ipv4_address_the_collector_sees(runner, db_engine):
    assert "Trusted 192.0.2.5" in runner.invoke(exporters_trust, ["::ffff:192.0.2.5"]).output
    assert "192.0.2.5 " in runner.invoke(exporters_list).output
