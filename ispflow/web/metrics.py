"""``/metrics``: the module's state for Prometheus.

Who may read it: a scraper presenting ``Authorization: Bearer <ISPFLOW_METRICS_TOKEN>`` (a
scraper cannot log in to a panel, and a token it keeps in a file is what Prometheus supports),
or an admin or technician logged in — the roles that see the status page, which shows the same
facts. Without a token set, only those sessions. A wrong token is refused outright (401).
"""
from __future__ import annotations

import hmac

from flask import Response, abort, request
from prometheus_client import CONTENT_TYPE_LATEST

from ..extension import settings
from ..roles import ADMIN, TECHNICIAN
from ..status_metrics import panel_metrics
from . import blueprint
from .access import roles_required

ROLES = (ADMIN, TECHNICIAN)


def _exposition() -> Response:
    return Response(panel_metrics(settings()), content_type=CONTENT_TYPE_LATEST)


_for_staff = roles_required(*ROLES)(_exposition)


@blueprint.route("/metrics")
def metrics_page():
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        token = settings().METRICS_TOKEN
        if token and hmac.compare_digest(header[len("Bearer "):].encode(), token.encode()):
            return _exposition()
        abort(401)
    return _for_staff()


metrics_page.ispflow_roles = ROLES
