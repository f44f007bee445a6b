"""The standalone panel's own accounts: login, one-time password, logout, CSRF."""
from ispflow.extension import db
from ispflow.standalone.users import ensure_admin
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
    client.post("/password", data={"password": "a new long secret", "confirm": "a new long secret",
                                   "csrf_token": csrf_token(page)})
    assert client.get("/netflow/").status_code == 200


def test_a_short_new_password_is_explained(app, auth, client):
    with app.app_context():
        password = ensure_admin(db.session)
        db.session.commit()
    auth.login_existing("admin", password)
    page = client.get("/password")
    response = client.post("/password", data={"password": "short", "confirm": "short", "csrf_token": csrf_token(page)})
    assert b"Use at least 10 characters." in response.data


def test_logout_ends_the_session(auth, client):
    auth.login("admin")
    page = client.get("/netflow/")
    client.post("/logout", data={"csrf_token": csrf_token(page)})
    assert client.get("/netflow/").status_code == 302
