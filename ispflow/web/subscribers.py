"""The subscriber directory page: who held an address when, and a CSV import for admins."""
import io

import sqlalchemy as sa
from flask import flash, redirect, render_template, url_for
from wtforms import FileField, StringField
from wtforms.validators import DataRequired, ValidationError

from ..app_state import session
from ..roles import ADMIN
from ..subscribers import IPAssignment, parse_time, read_csv, save_assignments, who
from .blueprint import blueprint
from .access import menu_entry, roles_required
from .forms import CSRFForm, QueryForm

PAGE_SIZE = 200


class WhoForm(QueryForm):
    ip = StringField("IP address", validators=[DataRequired()])
    at = StringField("At (ISO 8601, UTC unless an offset is given)", validators=[DataRequired()])

    def validate_ip(self, field):
        import ipaddress

        try:
            ipaddress.ip_address(field.data.strip())
        except ValueError:
            raise ValidationError("Not an IPv4 or IPv6 address.") from None

    def validate_at(self, field):
        try:
            parse_time(field.data)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


class ImportForm(CSRFForm):
    file = FileField("CSV file (account,service,prefix,valid_from,valid_to)")

    def validate_file(self, field):
        if not getattr(field.data, "filename", ""):
            raise ValidationError("Choose a CSV file.")
        text = field.data.read().decode("utf-8-sig", errors="replace")
        try:
            self.rows = read_csv(io.StringIO(text))
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


@blueprint.route("/subscribers", methods=["GET", "POST"])
@menu_entry("Subscribers", ADMIN)
@roles_required(ADMIN)
def subscribers():
    db = session()
    lookup = WhoForm.from_request()
    answer = None
    if lookup.ip.data and lookup.validate():
        answer = who(db, lookup.ip.data.strip(), parse_time(lookup.at.data)) or False
    upload = ImportForm.from_request()
    if upload.submitted_and_valid():
        count = save_assignments(db, upload.rows)
        db.commit()
        flash(f"Imported {count} assignments.", "success")
        return redirect(url_for(".subscribers"))
    rows = db.execute(
        sa.select(IPAssignment).order_by(IPAssignment.account, IPAssignment.valid_from).limit(PAGE_SIZE)
    ).scalars()
    return render_template("ispflow/subscribers.html", lookup=lookup, answer=answer, upload=upload, rows=list(rows))
