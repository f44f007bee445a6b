"""Login, logout and password changes of the standalone panel."""
import re
from urllib.parse import unquote, urlsplit

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, ValidationError

from ..extension import db, settings
from ..jobs import redis_connection
from ..web.forms import CSRFForm
from .throttle import Throttle
from .users import MIN_PASSWORD_LENGTH, PasswordExpired, User, authenticate

blueprint = Blueprint("standalone", __name__)

# A local path and query: printable URL characters only, no backslash, no scheme or host.
_LOCAL_PATH = re.compile(r"/[A-Za-z0-9\-._~!$&'()*+,;=:@%/?]*")


class LoginForm(CSRFForm):
    username = StringField("User name", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired()])


class PasswordForm(CSRFForm):
    current = PasswordField("Current password", validators=[DataRequired()])
    password = PasswordField("New password", validators=[DataRequired()])
    confirm = PasswordField("Repeat it", validators=[DataRequired(), EqualTo("password", "The passwords differ.")])

    def validate_password(self, field):
        if len(field.data or "") < MIN_PASSWORD_LENGTH:
            raise ValidationError(f"Use at least {MIN_PASSWORD_LENGTH} characters.")


def safe_next(target: str | None) -> str:
    """``target`` when it is a path on this site, else the panel's start page.

    Browsers read ``//host``, ``/\\host`` and paths with tabs or newlines stripped out as
    another site, so anything beyond plain path characters is refused rather than cleaned.
    """
    if target and all(_is_local_path(form) for form in (target, unquote(target), unquote(unquote(target)))):
        return target
    return url_for("ispflow.index")


def _is_local_path(text: str) -> bool:
    # Checked decoded too: a proxy or a browser may decode once more before following it.
    if not _LOCAL_PATH.fullmatch(text) or text.startswith("//"):
        return False
    parts = urlsplit(text)
    return not parts.scheme and not parts.netloc


def _throttle() -> Throttle:
    return Throttle(redis_connection(settings().REDIS_URL))


def _open_session(user: User) -> None:
    session.clear()
    session.permanent = True  # lives PERMANENT_SESSION_LIFETIME, then the user logs in again
    session["user_id"] = user.id
    session["generation"] = user.session_generation


@blueprint.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm.from_request()
    if form.submitted_and_valid():
        throttle, address = _throttle(), request.remote_addr or "-"
        wait = throttle.retry_after(form.username.data, address)
        if wait:
            form.password.errors.append(f"Too many failed logins; try again in {(wait + 59) // 60} minute(s).")
            return render_template("standalone/login.html", form=form), 429
        try:
            user = authenticate(db.session, form.username.data, form.password.data)
        except PasswordExpired as exc:
            form.password.errors.append(str(exc))
            return render_template("standalone/login.html", form=form)
        if user is None:
            throttle.failed(form.username.data, address)
            form.password.errors.append("Wrong user name or password.")
        else:
            throttle.succeeded(form.username.data, address)
            _open_session(user)
            if user.must_change_password:
                return redirect(url_for(".change_password", next=request.args.get("next")))
            return redirect(safe_next(request.args.get("next")))
    return render_template("standalone/login.html", form=form)


def _session_user() -> User | None:
    user = db.session.get(User, session.get("user_id") or 0)
    if user is None or not user.active or session.get("generation") != user.session_generation:
        return None
    return user


@blueprint.route("/password", methods=["GET", "POST"])
def change_password():
    user = _session_user()
    if user is None:
        return redirect(url_for(".login"))
    form = PasswordForm.from_request()
    if form.submitted_and_valid():
        if not user.check_password(form.current.data):
            form.current.errors.append("This is not your current password.")
        else:
            user.set_password(form.password.data)  # ends every other session of this user
            user.must_change_password = False
            db.session.commit()
            _open_session(user)
            flash("Password changed.", "success")
            return redirect(safe_next(request.args.get("next")))
    return render_template("standalone/password.html", form=form, user=user)


@blueprint.post("/logout")
def logout():
    form = CSRFForm.from_request()
    if form.validate():
        user = _session_user()
        if user is not None:
            # A signed cookie cannot be taken back: a copy of it stops working instead.
            user.session_generation += 1
            db.session.commit()
        session.clear()
    return redirect(url_for(".login"))
