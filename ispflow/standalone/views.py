"""Login, logout and the first-login password change of the standalone panel."""
from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, ValidationError

from ..extension import db
from ..web.forms import CSRFForm
from .users import MIN_PASSWORD_LENGTH, User, authenticate

blueprint = Blueprint("standalone", __name__)


class LoginForm(CSRFForm):
    username = StringField("User name", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired()])


class PasswordForm(CSRFForm):
    password = PasswordField("New password", validators=[DataRequired()])
    confirm = PasswordField("Repeat it", validators=[DataRequired(), EqualTo("password", "The passwords differ.")])

    def validate_password(self, field):
        if len(field.data or "") < MIN_PASSWORD_LENGTH:
            raise ValidationError(f"Use at least {MIN_PASSWORD_LENGTH} characters.")


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("ispflow.index")


@blueprint.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm.from_request()
    if form.submitted_and_valid():
        user = authenticate(db.session, form.username.data, form.password.data)
        if user is None:
            form.password.errors.append("Wrong user name or password.")
        else:
            session.clear()
            session["user_id"] = user.id
            if user.must_change_password:
                return redirect(url_for(".change_password", next=request.args.get("next")))
            return redirect(_safe_next(request.args.get("next")))
    return render_template("standalone/login.html", form=form)


@blueprint.route("/password", methods=["GET", "POST"])
def change_password():
    user = db.session.get(User, session.get("user_id") or 0)
    if user is None:
        return redirect(url_for(".login"))
    form = PasswordForm.from_request()
    if form.submitted_and_valid():
        user.set_password(form.password.data)
        user.must_change_password = False
        db.session.commit()
        flash("Password changed.", "success")
        return redirect(_safe_next(request.args.get("next")))
    return render_template("standalone/password.html", form=form, user=user)


@blueprint.post("/logout")
def logout():
    form = CSRFForm.from_request()
    if form.validate():
        session.clear()
    return redirect(url_for(".login"))
