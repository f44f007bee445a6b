"""WTForms with CSRF protection bound to the Flask session, for every form ispflow shows."""
from __future__ import annotations

from dataclasses import replace

from flask import current_app, request, session
from werkzeug.datastructures import CombinedMultiDict
from wtforms import Form
from wtforms.csrf.session import SessionCSRF

from ..keys import derive


class CSRFForm(Form):
    """Base of every ispflow form: a hidden ``csrf_token`` checked on submit."""

    class Meta:
        csrf = True
        csrf_class = SessionCSRF
        csrf_field_name = "csrf_token"

        @property
        def csrf_secret(self):
            # ispflow's own secret when it has one, else the host's: either way a key of its own.
            secret = current_app.config.get("ISPFLOW_SECRET_KEY") or current_app.config.get("SECRET_KEY") or ""
            if not secret:
                raise RuntimeError("SECRET_KEY is needed for CSRF protection")
            return derive(str(secret), "csrf")

        @property
        def csrf_context(self):
            return session

    @classmethod
    def from_request(cls, **kwargs):
        """The form filled from the POST body (or the query string of a GET form)."""
        if request.method != "POST":
            return cls(formdata=None, **kwargs)
        return cls(formdata=CombinedMultiDict([request.form, request.files]), **kwargs)

    def submitted_and_valid(self) -> bool:
        return request.method == "POST" and self.validate()


class QueryForm(Form):
    """A GET form that changes nothing (filters, lookups): no CSRF token needed."""

    @classmethod
    def from_request(cls, **kwargs):
        return cls(formdata=request.args or None, **kwargs)


def validated_settings(form, cls, values: dict):
    """A settings dataclass ``cls`` from the form's ``values``, or None with every bad field
    explained next to it (each field is checked alone by ``cls.validated()``, whose
    ValueError messages start with the field's name)."""
    for name, value in values.items():
        if form[name].errors:
            continue
        try:
            replace(cls(), **{name: value}).validated()
        except ValueError as exc:
            message = str(exc).split(": ", 1)[-1]
            form[name].errors = list(form[name].errors) + [message[0].upper() + message[1:] + "."]
    if any(form[name].errors for name in values):
        return None
    return cls(**values).validated()
