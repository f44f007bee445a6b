"""The module's home page for staff, and the customer's own page."""
import sqlalchemy as sa
from flask import render_template

from ..app_state import session
from ..roles import ADMIN, COMPLIANCE, CUSTOMER, STAFF, TECHNICIAN
from ..subscribers import IPAssignment, assignments_of_account
from .blueprint import blueprint
from .access import current_user, menu_entry, roles_required


@blueprint.route("/")
@roles_required(*STAFF, CUSTOMER)
def index():
    user = current_user()
    if user.role == CUSTOMER:
        return my_addresses()
    db = session()
    counts = {
        "exporters": db.execute(sa.text("select count(*) from ispflow.exporters")).scalar(),
        "routers": db.execute(sa.text("select count(*) from ispflow.routers")).scalar(),
        "assignments": db.execute(sa.select(sa.func.count()).select_from(IPAssignment)).scalar(),
    }
    return render_template("ispflow/index.html", counts=counts)


menu_entry("Overview", ADMIN, TECHNICIAN, COMPLIANCE)(index)


@blueprint.route("/my")
@menu_entry("My addresses", CUSTOMER)
@roles_required(CUSTOMER)
def my_addresses():
    user = current_user()
    held = assignments_of_account(session(), user.account)
    return render_template("ispflow/my_addresses.html", assignments=held, account=user.account)
