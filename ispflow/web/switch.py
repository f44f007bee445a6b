"""The module switched off in its settings: every page but the settings answers "not enabled".

Admins are told where to switch it on; the metrics endpoint keeps answering (it reports the
module as disabled). The role guards still run first for anonymous users, so switching the
module off reveals nothing to someone not logged in.
"""
from __future__ import annotations

from flask import render_template, request

from ..roles import ADMIN
from . import blueprint
from .access import current_user, module_enabled

ALWAYS_OPEN = {"ispflow.module_settings_page", "ispflow.metrics_page", "ispflow.static"}


@blueprint.before_request
def refuse_while_disabled():
    if request.endpoint in ALWAYS_OPEN or current_user() is None or module_enabled():
        return None
    return render_template("ispflow/not_enabled.html", can_enable=current_user().role == ADMIN), 404
