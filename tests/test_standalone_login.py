"""The standalone panel's own accounts: login, one-time password, logout, CSRF, throttling, sessions."""
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from ispflow.extension import db
from ispflow.standalone import throttle
from ispflow.standalone.users import User, ensure_admin
from ispflow.testing import csrf_token


def test_login_with_the_right_password_opens_the_panel(auth, client):
    response = auth.login("technician")
    assert response.status_code == 302
    assert client.get("/netflow/").status_code == 200


def test_wrong_password_is_refused_with_a_message(auth, client):
    auth.create("admin", username="alice")
    response = auth.login_existing("alice", "not the password")
    assert response.status_code == 200
    assert b"Wrong user name or password." in response.data
    assert client.get("/netflow/").status_code == 302


def test_login_without_csrf_token_is_refused(auth, client):
    auth.create("admin", username="alice")
    response = client.post("/login", data={"username": "alice", "password": "correct horse battery"})
    assert b"The form expired" in response.data
    assert client.get("/netflow/").status_code == 302


def test_first_admin_must_replace_the_one_time_password(app, auth, client):
    with app.app_context():
        password = ensure_admin(db.session)
        db.session.commit()
        assert ensure_admin(db.session) is None
    response = auth.login_existing("admin", password)
    assert response.headers["Location"].startswith("/password")
    assert client.get("/netflow/").status_code == 302  # not in until the password is changed
    page = client.get("/password")
    client.post("/password", data={"current": password, "password": "a new long secret",
                                   "confirm": "a new long secret", "csrf_token": csrf_token(page)})
    assert client.get("/netflow/").status_code == 200


def test_a_short_new_password_is_explained(app, auth, client):
    with app.app_context():
        password = ensure_admin(db.session)
        db.session.commit()
    auth.login_existing("admin", password)
    page = client.get("/password")
    response = client.post("/password", data={"current": password, "password": "short", "confirm": "short",
                                              "csrf_token": csrf_token(page)})
    assert b"Use at least 10 characters." in response.data


def test_logout_ends_the_session(auth, client):
    auth.login("admin")
    page = client.get("/netflow/")
    client.post("/logout", data={"csrf_token": csrf_token(page)})
    assert client.get("/netflow/").status_code == 302


# --- where a login may send the browser ------------------------------------------------------
OFF_SITE = [
    "//evil.com", "///evil.com", "/\\evil.com", "/\\/evil.com", "\\\\evil.com", "/\t/evil.com", "/%09/evil.com",
    "/\n/evil.com", "/\r\n/evil.com", " //evil.com", "https://evil.com", "http:evil.com", "javascript:alert(1)",
    "data:text/html,x", "evil.com", "/ /evil.com", "/\x00/evil.com", "//evil.com/%2F..", "\t//evil.com",
]


# As they appear in a link: percent-encoded once, twice, or mixed.
OFF_SITE_IN_LINKS = [
    "/%09/evil.com", "/%0A/evil.com", "/%0D%0A/evil.com", "%2F%2Fevil.com", "/%2F/evil.com", "/%5Cevil.com",
    "/%5C%5Cevil.com", "/%252F%252Fevil.com", "/%25%30%39/evil.com", "https:%2F%2Fevil.com", "%68ttps://evil.com",
    "/%E2%80%A8/evil.com", "/%00/evil.com",
]


def login_with_next(client, query: str):
    token = csrf_token(client.get("/login"))
    return client.post("/login?" + query,
                       data={"username": "alice", "password": "correct horse battery", "csrf_token": token})


@pytest.mark.parametrize("target", OFF_SITE)
def test_login_never_sends_the_browser_to_another_site(auth, client, target):
    from urllib.parse import urlencode

    auth.create("admin", username="alice")
    assert login_with_next(client, urlencode({"next": target})).headers["Location"] == "/netflow/"


@pytest.mark.parametrize("link", OFF_SITE_IN_LINKS)
def test_login_never_follows_an_encoded_off_site_link(auth, client, link):
    auth.create("admin", username="alice")
    assert login_with_next(client, "next=" + link).headers["Location"] == "/netflow/"


@pytest.mark.parametrize("target", ["/netflow/search?ip=192.0.2.1&case_ref=A%2F1", "/netflow/routers/3"])
def test_login_returns_to_the_page_asked_for_on_this_site(auth, client, target):
    auth.create("admin", username="alice")
    token = csrf_token(client.get("/login"))
    response = client.post("/login", query_string={"next": target},
                           data={"username": "alice", "password": "correct horse battery", "csrf_token": token})
    assert response.headers["Location"] == target


# --- throttling and timing -------------------------------------------------------------------
def test_an_account_is_throttled_after_repeated_failures_even_with_the_right_password(auth, client):
    auth.create("admin", username="alice")
    for _ in range(throttle.ACCOUNT_LIMIT):
        assert auth.login_existing("alice", "a wrong guess").status_code == 200
    response = auth.login_existing("alice", "correct horse battery")
    assert response.status_code == 429
    assert b"Too many failed logins" in response.data
    assert client.get("/netflow/").status_code == 302


def test_a_client_address_is_throttled_across_accounts(auth, client):
    auth.create("admin", username="alice")
    for n in range(throttle.ADDRESS_LIMIT):
        auth.login_existing(f"guess-{n}", "a wrong guess")
    assert auth.login_existing("alice", "correct horse battery").status_code == 429


def test_another_address_may_still_log_in_while_one_is_throttled(app, auth):
    auth.create("admin", username="alice")
    for n in range(throttle.ADDRESS_LIMIT):
        auth.login_existing(f"guess-{n}", "a wrong guess")
    other = app.test_client()
    other.environ_base["REMOTE_ADDR"] = "192.0.2.55"
    token = csrf_token(other.get("/login"))
    response = other.post("/login", data={"username": "alice", "password": "correct horse battery", "csrf_token": token})
    assert response.status_code == 302


def test_a_success_clears_the_account_count(auth):
    auth.create("admin", username="alice")
    for _ in range(throttle.ACCOUNT_LIMIT - 1):
        auth.login_existing("alice", "a wrong guess")
    assert auth.login_existing("alice", "correct horse battery").status_code == 302
    for _ in range(throttle.ACCOUNT_LIMIT - 1):
        auth.login_existing("alice", "a wrong guess")
    assert auth.login_existing("alice", "correct horse battery").status_code == 302


def test_an_unknown_user_costs_a_password_hash_check_like_a_known_one(app, auth, monkeypatch):
    from ispflow.standalone import users

    checked = []
    real = users.check_password_hash
    monkeypatch.setattr(users, "check_password_hash", lambda h, p: checked.append(h.split("$")[0]) or real(h, p))
    auth.create("admin", username="alice")
    auth.login_existing("alice", "a wrong guess")
    auth.login_existing("nobody-of-that-name", "a wrong guess")
    assert len(checked) == 2 and checked[0] == checked[1]  # the same method and cost


# --- sessions --------------------------------------------------------------------------------
def test_the_session_cookie_is_secure_over_https_and_has_a_lifetime(auth, client):
    auth.create("admin", username="alice")
    token = csrf_token(client.get("/login", base_url="https://panel.example"))
    response = client.post("/login", base_url="https://panel.example",
                           data={"username": "alice", "password": "correct horse battery", "csrf_token": token})
    cookie = response.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "Expires=" in cookie


def test_the_session_cookie_is_not_marked_secure_over_plain_http(auth):
    response = auth.login("admin")
    assert "Secure" not in response.headers["Set-Cookie"]


def test_a_copied_session_cookie_stops_working_after_logout(app, auth, client):
    auth.login("admin")
    copy = app.test_client()
    copy.set_cookie("session", client.get_cookie("session").value)
    assert copy.get("/netflow/").status_code == 200
    client.post("/logout", data={"csrf_token": csrf_token(client.get("/netflow/"))})
    assert copy.get("/netflow/").status_code == 302


def test_changing_the_password_ends_the_other_sessions_but_not_this_one(app, auth, client):
    auth.login("admin", username="alice")
    other = app.test_client()
    token = csrf_token(other.get("/login"))
    other.post("/login", data={"username": "alice", "password": "correct horse battery", "csrf_token": token})
    assert other.get("/netflow/").status_code == 200
    page = client.get("/password")
    client.post("/password", data={"current": "correct horse battery", "password": "another long secret",
                                   "confirm": "another long secret", "csrf_token": csrf_token(page)})
    assert client.get("/netflow/").status_code == 200
    assert other.get("/netflow/").status_code == 302


def test_changing_the_password_asks_for_the_current_one(auth, client):
    auth.login("admin", username="alice")
    page = client.get("/password")
    response = client.post("/password", data={"current": "not my password", "password": "another long secret",
                                              "confirm": "another long secret", "csrf_token": csrf_token(page)})
    assert b"This is not your current password." in response.data
    client.post("/logout", data={"csrf_token": csrf_token(client.get("/netflow/"))})
    assert auth.login_existing("alice", "correct horse battery").status_code == 302


def test_the_first_admins_one_time_password_expires(app, auth):
    with app.app_context():
        password = ensure_admin(db.session)
        db.session.execute(sa.update(User).values(password_expires_at=datetime.now(timezone.utc) - timedelta(seconds=1)))
        db.session.commit()
    response = auth.login_existing("admin", password)
    assert response.status_code == 200
    assert b"one-time password has expired" in response.data


def test_the_first_admins_one_time_password_is_valid_for_a_day(app):
    with app.app_context():
        ensure_admin(db.session)
        user = db.session.execute(sa.select(User)).scalar_one()
        left = user.password_expires_at - datetime.now(timezone.utc)
    assert timedelta(hours=23) < left <= timedelta(hours=24)
