"""The subscriber directory page: who held an address when, and a CSV import for admins."""
import hashlib
import io

import sqlalchemy as sa
from flask import flash, redirect, render_template, request, url_for
from wtforms import FileField, StringField
from wtforms.validators import DataRequired, ValidationError

from ..app_state import session
from ..roles import ADMIN
from ..subscribers import IPAssignment, OverlapError, parse_time, read_csv, record_change, record_lookup, save_assignments, who
from .access import current_user, menu_entry, roles_required
from .blueprint import blueprint
from .forms import CSRFForm

PAGE_SIZE = 200


class WhoForm(CSRFForm):
    """A POST form: each lookup writes an audit entry in the admin's name."""

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
        content = field.data.read()
        self.sha256 = hashlib.sha256(content).hexdigest()
        text = content.decode("utf-8-sig", errors="replace")
        try:
            self.rows = read_csv(io.StringIO(text))
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


@blueprint.route("/subscribers", methods=["GET", "POST"])
@menu_entry("Subscribers", ADMIN)
@roles_required(ADMIN)
def subscribers():
    db = session()
    user = current_user()
    looking_up = request.method == "POST" and "ip" in request.form
    lookup = WhoForm.from_request() if looking_up else WhoForm(formdata=None)
    answer = None
    if looking_up and lookup.validate():
        address, at = lookup.ip.data.strip(), parse_time(lookup.at.data)
        found = who(db, address, at)
        record_lookup(db, actor=user.name, role=user.role, address=address, at=at, found=found)
        db.commit()
        answer = found or False
    upload = ImportForm(formdata=None) if looking_up else ImportForm.from_request()
    if not looking_up and upload.submitted_and_valid():
        try:
            count = save_assignments(db, upload.rows)
        except OverlapError as exc:
            upload.file.errors.append(f"{exc}; nothing was imported.")
        else:
            record_change(db, actor=user.name, role=user.role, action="subscribers.import", rows=count,
                          sha256=upload.sha256, file=upload.file.data.filename)
            db.commit()
            flash(f"Imported {count} assignments.", "success")
            return redirect(url_for(".subscribers"))
    rows = db.execute(
        sa.select(IPAssignment).order_by(IPAssignment.account, IPAssignment.valid_from).limit(PAGE_SIZE)
    ).scalars()
    return render_template("ispflow/subscribers.html", lookup=lookup, answer=answer, upload=upload, rows=list(rows))
