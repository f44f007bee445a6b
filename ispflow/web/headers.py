"""Security headers on every page ispflow serves (and on the standalone host's own pages).

Scripts and styles come from files served by the blueprint, never inline, so the policy can
refuse inline script outright: an injected ``<script>`` or ``onclick=`` does not run.
"""
from __future__ import annotations

from . import blueprint

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])

HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def add_security_headers(response):
    """Set the headers a response does not set itself (a host may have stricter ones)."""
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    return response


blueprint.after_request(add_security_headers)
