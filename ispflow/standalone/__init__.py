"""The standalone host: a minimal panel with its own users, for ISPs without a Flask panel."""
from __future__ import annotations

import secrets
from datetime import timedelta

from flask import Flask, redirect, request, url_for
from flask.sessions import SecureCookieSessionInterface

from ..config import ConfigError, Settings
from ..database import package_path
from ..extension import ISPFlow, db
from ..keys import derive
from .users import User

ispflow = ISPFlow()
# A login lasts this long without use (each request renews it), then the user logs in again.
SESSION_LIFETIME = timedelta(hours=8)


class SessionOverHTTPS(SecureCookieSessionInterface):
    """Marks the session cookie ``Secure`` whenever the request came over HTTPS.

    Behind a TLS-terminating proxy the host must make ``request.is_secure`` true (for example
    with Werkzeug's ProxyFix), or set ``SESSION_COOKIE_SECURE``.
    """

    def get_cookie_secure(self, app):
        return bool(app.config["SESSION_COOKIE_SECURE"] or request.is_secure)


def create_app(test_config: dict | None = None) -> Flask:
    app = Flask(__name__, template_folder=str(package_path("ispflow.templates")))
    app.config.from_mapping(Settings.from_env().as_flask_config())
    app.config["ISPFLOW_BASE_TEMPLATE"] = "standalone/layout.html"
    app.config.update(test_config or {})
    # The configured secret is the root; Flask signs sessions with a key derived for that alone.
    app.config["SECRET_KEY"] = derive(_secret_key(app), "session").hex()
    app.config.setdefault("ISPFLOW_LOGIN_URL", "/login")
    if not app.config["ISPFLOW_LOGIN_URL"]:
        app.config["ISPFLOW_LOGIN_URL"] = "/login"
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax")
    app.config.setdefault("PERMANENT_SESSION_LIFETIME", SESSION_LIFETIME)
    app.session_interface = SessionOverHTTPS()
    ispflow.init_app(app)

    from ..web.headers import add_security_headers
    from . import views

    app.register_blueprint(views.blueprint)
    app.after_request(add_security_headers)

    @app.get("/")
    def home():
        return redirect(url_for("ispflow.index"))

    @app.context_processor
    def logout_token():
        from ..web.forms import CSRFForm

        return {"logout_csrf_token": lambda: CSRFForm().csrf_token.current_token}

    return app


@ispflow.user_loader
def _logged_in_user():
    from flask import session

    user_id = session.get("user_id")
    if user_id is None:
        return None
    user = db.session.get(User, user_id)
    if user is None or not user.active or user.must_change_password:
        return None
    if session.get("generation") != user.session_generation:  # logged out or password changed since
        return None
    return user.as_current_user()


def _secret_key(app: Flask) -> str:
    key = app.config.get("ISPFLOW_SECRET_KEY") or app.config.get("SECRET_KEY")
    if key:
        return key
    if app.config.get("TESTING") or app.config.get("ISPFLOW_DEBUG"):
        return secrets.token_hex(32)
    raise ConfigError("Set ISPFLOW_SECRET_KEY to a long random string (the run script generates one).")
