"""One secret, separate keys: sessions, CSRF and router credentials; rotating the credential key."""
import base64

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from sqlalchemy.orm import Session

from .fakes.fixtures import ENCRYPTION_KEY
from ispflow.config import Settings
from ispflow.keys import PURPOSES, derive
from ispflow.routers import inventory
from ispflow.routers.crypto import CredentialsUnreadable, decrypt, encrypt, rotate
from ispflow.routers.models import Router

SECRET = "the-one-configured-secret-of-the-panel"


def test_each_purpose_gets_its_own_key():
    keys = {derive(SECRET, purpose) for purpose in PURPOSES}
    assert len(keys) == len(PURPOSES)
    assert SECRET.encode() not in keys


def test_the_audit_chain_is_keyed_with_its_own_derived_key():
    from ispflow import audit

    assert audit.audit_key(Settings.from_env({}, SECRET_KEY=SECRET)) == derive(SECRET, "audit-chain")


def test_a_key_is_the_same_every_time_it_is_derived():
    assert derive(SECRET, "csrf") == derive(SECRET, "csrf")
    assert derive(SECRET, "csrf") != derive(SECRET + "x", "csrf")


def test_an_unknown_purpose_is_refused():
    with pytest.raises(ValueError, match="unknown key purpose"):
        derive(SECRET, "everything")


def test_the_panel_signs_sessions_with_a_derived_key_not_the_secret(database_url):
    from ispflow.standalone import create_app

    app = create_app({"ISPFLOW_SECRET_KEY": SECRET, "ISPFLOW_DATABASE_URL": database_url})
    assert app.config["SECRET_KEY"] == derive(SECRET, "session").hex()


def test_settings_never_show_secrets_in_their_repr():
    settings = Settings.from_env({}, SECRET_KEY=SECRET, ENCRYPTION_KEY=ENCRYPTION_KEY,
                                 ENCRYPTION_KEY_PREVIOUS=(ENCRYPTION_KEY,), AUDIT_KEY="audit-chain-key")
    assert SECRET not in repr(settings) and ENCRYPTION_KEY not in repr(settings)
    assert "audit-chain-key" not in repr(settings)
    assert SECRET not in str(settings)


def test_credentials_use_the_derived_key_and_old_secret_hashes_still_read():
    import hashlib

    settings = Settings.from_env({}, SECRET_KEY=SECRET)
    derived = Fernet(base64.urlsafe_b64encode(derive(SECRET, "router-credentials")))
    assert derived.decrypt(encrypt(settings, "pw")) == b"pw"
    legacy = Fernet(base64.urlsafe_b64encode(hashlib.sha256(b"ispflow-router-credentials:" + SECRET.encode()).digest()))
    assert decrypt(settings, legacy.encrypt(b"old")) == "old"


@pytest.fixture
def db(db_engine):
    with Session(db_engine, expire_on_commit=False) as session:
        yield session


def add(db, settings, name):
    router = inventory.add_router(db, settings, name=name, vendor="mikrotik", host="192.0.2.1", username="admin",
                                  password=f"password-of-{name}", collector="192.0.2.10:2055")
    db.commit()
    return router


def test_rotation_re_encrypts_every_router_with_the_new_key_and_loses_none(db):
    old, new = Settings.from_env({}, ENCRYPTION_KEY=ENCRYPTION_KEY), Fernet.generate_key().decode()
    for name in ("edge-1", "edge-2"):
        add(db, old, name)
    during = Settings.from_env({}, ENCRYPTION_KEY=new, ENCRYPTION_KEY_PREVIOUS=(ENCRYPTION_KEY,))
    assert decrypt(during, db.get(Router, 1).secret) == "password-of-edge-1"  # routers keep working meanwhile
    done, unreadable = rotate(db, during)
    db.commit()
    assert (done, unreadable) == (["edge-1", "edge-2"], [])
    after = Settings.from_env({}, ENCRYPTION_KEY=new)
    assert [decrypt(after, r.secret) for r in db.query(Router).order_by(Router.name)] == [
        "password-of-edge-1", "password-of-edge-2"]
    with pytest.raises(CredentialsUnreadable):
        decrypt(old, db.get(Router, 1).secret)


def test_rotation_leaves_a_password_no_key_reads_untouched_and_names_it(db):
    add(db, Settings.from_env({}, ENCRYPTION_KEY=ENCRYPTION_KEY), "edge-1")
    stranger = Settings.from_env({}, ENCRYPTION_KEY=Fernet.generate_key().decode())
    before = bytes(db.get(Router, 1).secret)
    assert rotate(db, stranger) == ([], ["edge-1"])
    assert bytes(db.get(Router, 1).secret) == before


def test_keys_rotate_on_the_command_line(runner, app, monkeypatch):
    from ispflow.extension import db as flask_db
    from ispflow.routers.cli import keys_rotate

    with app.app_context():
        add(flask_db.session, Settings.from_env({}, ENCRYPTION_KEY=ENCRYPTION_KEY), "edge-1")
    result = runner.invoke(keys_rotate)
    assert result.exit_code == 0, result.output
    assert "Re-encrypted the passwords of 1 router(s)" in result.output
    with app.app_context():
        entry = flask_db.session.execute(sa.text("select criteria from ispflow.audit_log where action = 'keys.rotate'")).scalar()
    assert entry == {"re_encrypted": ["edge-1"], "unreadable": []}


def test_csrf_tokens_are_signed_with_their_own_derived_key(database_url):
    from ispflow.standalone import create_app
    from ispflow.web.forms import CSRFForm

    app = create_app({"ISPFLOW_SECRET_KEY": SECRET, "ISPFLOW_DATABASE_URL": database_url})
    with app.test_request_context("/"):
        assert CSRFForm().meta.csrf_secret == derive(SECRET, "csrf")
