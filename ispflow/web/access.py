"""Who may see which page: every view names its roles with ``@roles_required``."""
from __future__ import annotations

from functools import wraps

from flask import abort, g, redirect, request

from ..extension import settings, state
from ..roles import ROLES
from . import blueprint

# (endpoint, label, roles): the menu, in order; a user sees the entries of their role.
MENU: list[tuple[str, str, tuple[str, ...]]] = []


def menu_entry(label: str, *roles: str):
    """Add the decorated view to the menu for the given roles."""

    def decorate(view):
        MENU.append((f"{blueprint.name}.{view.__name__}", label, roles))
        return view

    return decorate


def current_user():
    if "ispflow_user" not in g:
        g.ispflow_user = state().extension.current_user()
    return g.ispflow_user


def roles_required(*roles: str):
    """Refuse the view to anonymous users (401 or the login page) and to other roles (403)."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}")

    def decorate(view):
        @wraps(view)
        def guarded(*args, **kwargs):
            user = current_user()
            if user is None:
                login_url = settings().LOGIN_URL
                if login_url:
                    return redirect(f"{login_url}?next={request.full_path}")
                abort(401)
            if user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        guarded.ispflow_roles = roles
        return guarded

    return decorate


@blueprint.app_context_processor
def template_globals():
    def visible_menu():
        user = current_user()
        if user is None or not module_enabled():
            return []  # switched off, the module shows no entry in any navigation
        return [(endpoint, label) for endpoint, label, roles in MENU if user.role in roles]

    return {
        "ispflow_local_time": local_time,
        "ispflow_base_template": settings().BASE_TEMPLATE if "ispflow" in _extensions() else "ispflow/layout.html",
        "ispflow_menu": visible_menu if "ispflow" in _extensions() else (lambda: []),
        "ispflow_user": current_user if "ispflow" in _extensions() else (lambda: None),
    }


def module_enabled() -> bool:
    """Whether the module is switched on in its settings (read once per request, so switching
    takes effect on the next request of every process)."""
    if "ispflow_enabled" not in g:
        from .. import module_settings
        from ..extension import session

        g.ispflow_enabled = module_settings.load(session()).enabled
    return g.ispflow_enabled


def local_time(moment) -> str:
    """A stored (UTC) moment as the ISP reads it: in the time zone of the module settings."""
    if moment is None:
        return "—"
    if "ispflow_zone" not in g:
        from .. import module_settings
        from ..extension import session

        g.ispflow_zone = module_settings.load(session()).zone if "ispflow" in _extensions() else None
    return moment.astimezone(g.ispflow_zone).strftime("%Y-%m-%d %H:%M:%S %z")


def _extensions():
    from flask import current_app

    return current_app.extensions
