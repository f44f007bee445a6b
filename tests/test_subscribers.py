"""The subscriber directory answers who held an address at a moment, from validity periods."""
import hashlib
import io

import sqlalchemy as sa

from ispflow.cli import subscribers_import, subscribers_who
from ispflow.testing import csrf_token

REASSIGNED = """account,service,prefix,valid_from,valid_to
ACC-OLD,dsl-20,203.0.113.10,2026-01-01T00:00:00Z,2026-03-01T12:00:00Z
ACC-NEW,fiber-100,203.0.113.10,2026-03-01T12:00:00Z,
ACC-POOL,cgnat,203.0.113.0/24,2025-01-01T00:00:00Z,
"""


def import_csv(runner, tmp_path, text):
    path = tmp_path / "directory.csv"
    path.write_text(text)
    return runner.invoke(subscribers_import, [str(path)])


def test_reassigned_address_gives_the_old_account_before_and_the_new_after(runner, tmp_path):
    assert "Imported 3 assignments" in import_csv(runner, tmp_path, REASSIGNED).output
    before = runner.invoke(subscribers_who, ["--ip", "203.0.113.10", "--at", "2026-03-01T11:59:59Z"])
    after = runner.invoke(subscribers_who, ["--ip", "203.0.113.10", "--at", "2026-03-01T12:00:00Z"])
    assert "account=ACC-OLD service=dsl-20" in before.output
    assert "account=ACC-NEW service=fiber-100" in after.output


def test_the_most_specific_prefix_wins_and_the_pool_covers_the_rest(runner, tmp_path):
    import_csv(runner, tmp_path, REASSIGNED)
    other = runner.invoke(subscribers_who, ["--ip", "203.0.113.99", "--at", "2026-05-01T00:00:00Z"])
    assert "account=ACC-POOL" in other.output


def test_an_address_nobody_held_exits_1(runner, tmp_path):
    import_csv(runner, tmp_path, REASSIGNED)
    result = runner.invoke(subscribers_who, ["--ip", "192.0.2.1", "--at", "2026-05-01T00:00:00Z"])
    assert result.exit_code == 1
    assert "No subscriber held 192.0.2.1" in result.output


def test_times_with_an_offset_are_compared_in_utc(runner, tmp_path):
    import_csv(runner, tmp_path, REASSIGNED)
    # 13:30 in Prague (+01:00) is 12:30 UTC: after the reassignment.
    result = runner.invoke(subscribers_who, ["--ip", "203.0.113.10", "--at", "2026-03-01T13:30:00+01:00"])
    assert "ACC-NEW" in result.output


def test_reimporting_the_same_file_changes_nothing(runner, tmp_path):
    import_csv(runner, tmp_path, REASSIGNED)
    import_csv(runner, tmp_path, REASSIGNED)
    result = runner.invoke(subscribers_who, ["--ip", "203.0.113.10", "--at", "2026-02-01T00:00:00Z"])
    assert "ACC-OLD" in result.output


def test_a_bad_csv_names_every_bad_line_and_imports_nothing(runner, tmp_path):
    bad = "account,service,prefix,valid_from,valid_to\nA,s,999.1.1.1,2026-01-01T00:00:00Z,\nB,s,10.0.0.1,yesterday,\n"
    result = import_csv(runner, tmp_path, bad)
    assert result.exit_code == 2
    assert "line 2: prefix '999.1.1.1' is not an IP address" in result.output
    assert "line 3: valid_from 'yesterday' is not an ISO 8601 date-time" in result.output
    assert runner.invoke(subscribers_who, ["--ip", "10.0.0.1", "--at", "2026-05-01T00:00:00Z"]).exit_code == 1


def test_a_wrong_header_is_explained(runner, tmp_path):
    result = import_csv(runner, tmp_path, "ip,who\n1.2.3.4,x\n")
    assert "the first line must be the header account,service,prefix,valid_from,valid_to" in result.output


def test_who_rejects_a_bad_address_with_one_sentence(runner):
    result = runner.invoke(subscribers_who, ["--ip", "not-an-ip", "--at", "2026-01-01T00:00:00Z"])
    assert result.exit_code == 2
    assert "'not-an-ip' is not an IP address." in result.output


def test_admin_imports_a_csv_through_the_page(auth, client):
    auth.login("admin")
    page = client.get("/netflow/subscribers")
    response = client.post(
        "/netflow/subscribers",
        data={"csrf_token": csrf_token(page), "file": (io.BytesIO(REASSIGNED.encode()), "dir.csv")},
        content_type="multipart/form-data",
        follow_redirects=True,
    )
    assert b"Imported 3 assignments." in response.data
    answer = look_up(client, "203.0.113.10", "2026-02-01T00:00:00Z").data
    assert b'id="who-answer">203.0.113.10 was held by account <strong>ACC-OLD' in answer


def test_import_without_csrf_token_is_refused(auth, client):
    auth.login("admin")
    response = client.post(
        "/netflow/subscribers",
        data={"file": (io.BytesIO(REASSIGNED.encode()), "dir.csv")},
        content_type="multipart/form-data",
    )
    assert b"The form expired" in response.data
    assert b"ACC-OLD" not in client.get("/netflow/subscribers").data


def look_up(client, ip, at, **extra):
    token = csrf_token(client.get("/netflow/subscribers"))
    return client.post("/netflow/subscribers", data={"csrf_token": token, "ip": ip, "at": at, **extra})


def test_lookup_form_explains_a_bad_address(auth, client):
    auth.login("admin")
    page = look_up(client, "300.1.1.1", "2026-01-01T00:00:00Z").data
    assert b"Not an IPv4 or IPv6 address." in page


def audit_entries(app, action):
    from ispflow.extension import db

    with app.app_context():
        return db.session.execute(sa.text("select actor, role, case_ref, criteria, row_count from ispflow.audit_log "
                                          "where action = :action order by id"), {"action": action}).all()


def test_the_admins_lookup_is_audited_in_their_name(app, auth, client, runner, tmp_path):
    import_csv(runner, tmp_path, REASSIGNED)
    auth.login("admin")
    look_up(client, "203.0.113.10", "2026-02-01T00:00:00Z")
    [entry] = audit_entries(app, "who")
    assert (entry.actor, entry.role, entry.row_count) == ("admin-user", "admin", 1)
    assert entry.criteria == {"ip": "203.0.113.10", "at": "2026-02-01T00:00:00+00:00", "source": "directory"}


def test_a_lookup_without_csrf_token_is_refused_and_not_audited(app, auth, client):
    auth.login("admin")
    response = client.post("/netflow/subscribers", data={"ip": "203.0.113.10", "at": "2026-02-01T00:00:00Z"})
    assert response.data.count(b"The form expired") == 1 and b'id="who-answer"' not in response.data
    assert audit_entries(app, "who") == []


def test_the_command_line_lookup_is_audited_found_or_not(app, runner, tmp_path):
    import_csv(runner, tmp_path, REASSIGNED)
    runner.invoke(subscribers_who, ["--ip", "203.0.113.10", "--at", "2026-02-01T00:00:00Z", "--case", "C-7"])
    runner.invoke(subscribers_who, ["--ip", "192.0.2.1", "--at", "2026-02-01T00:00:00Z"])
    entries = audit_entries(app, "who")
    assert [(e.actor.startswith("cli:"), e.case_ref, e.row_count) for e in entries] == [(True, "C-7", 1),
                                                                                       (True, None, 0)]


def test_an_import_is_audited_with_its_row_count_and_the_files_sha256(app, runner, tmp_path):
    import_csv(runner, tmp_path, REASSIGNED)
    [entry] = audit_entries(app, "subscribers.import")
    assert entry.row_count == 3
    assert entry.criteria["sha256"] == hashlib.sha256(REASSIGNED.encode()).hexdigest()


def test_an_import_through_the_page_is_audited_with_the_uploads_sha256(app, auth, client):
    auth.login("admin")
    token = csrf_token(client.get("/netflow/subscribers"))
    client.post("/netflow/subscribers", data={"csrf_token": token, "file": (io.BytesIO(REASSIGNED.encode()), "d.csv")},
                content_type="multipart/form-data")
    [entry] = audit_entries(app, "subscribers.import")
    assert (entry.actor, entry.row_count, entry.criteria["file"]) == ("admin-user", 3, "d.csv")
    assert entry.criteria["sha256"] == hashlib.sha256(REASSIGNED.encode()).hexdigest()


def test_a_bad_import_writes_no_audit_entry(app, runner, tmp_path):
    import_csv(runner, tmp_path, "account,service,prefix,valid_from,valid_to\nA,s,nonsense,2026-01-01,\n")
    assert audit_entries(app, "subscribers.import") == []


def test_customer_page_lists_only_the_customers_current_addresses(auth, client, runner, tmp_path):
    import_csv(runner, tmp_path, REASSIGNED)
    auth.login("customer", account="ACC-NEW")
    page = client.get("/netflow/my").data
    assert b"203.0.113.10" in page
    assert b"203.0.113.0/24" not in page


def test_times_are_shown_in_the_isps_time_zone(app, auth, client, runner, tmp_path):
    from ispflow import module_settings
    from ispflow.extension import db

    import_csv(runner, tmp_path, REASSIGNED)
    with app.app_context():
        module_settings.save(db.session, module_settings.ModuleSettings(timezone="Europe/Prague"))
        db.session.commit()
    auth.login("admin")
    page = client.get("/netflow/subscribers").data
    assert b"2026-03-01 13:00:00 +0100" in page  # 12:00 UTC, when ACC-NEW took the address
