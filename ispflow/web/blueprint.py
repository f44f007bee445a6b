"""The one blueprint every ispflow page registers on."""
from flask import Blueprint

from ..database import package_path

blueprint = Blueprint("ispflow", __name__, template_folder=str(package_path("ispflow.templates")))
