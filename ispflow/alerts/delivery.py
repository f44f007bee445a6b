"""Delivering an alert: an e-mail through the configured SMTP server and a JSON POST to the
rule's webhook. Each channel reports one line ("sent", "not configured", or why it failed);
a failing channel never stops the others or the job."""
from __future__ import annotations

import json
import smtplib
import socket
import ssl
import urllib.error
import urllib.request
from email.message import EmailMessage

from ..config import Settings

TIMEOUT = 10.0


def payload(rule, alert_id: int | None, incident: str, message: str, details: dict, raised_at) -> dict:
    """The JSON a webhook receives (and the e-mail's facts)."""
    return {"source": "ispflow", "alert_id": alert_id, "rule": rule.name, "kind": rule.kind, "incident": incident,
            "message": message, "details": details, "raised_at": raised_at.isoformat()}


def send_email(settings: Settings, recipients, data: dict) -> str:
    if not recipients:
        return "no recipients"
    if not settings.SMTP_HOST:
        return "not configured (ISPFLOW_SMTP_HOST)"
    mail = EmailMessage()
    mail["Subject"] = f"[ispflow] {data['rule']}: {data['message']}"[:200]
    mail["From"] = settings.SMTP_FROM
    mail["To"] = ", ".join(recipients)
    mail.set_content(f"{data['message']}\n\nRule: {data['rule']} ({data['kind']})\nIncident: {data['incident']}\n"
                     f"Raised at: {data['raised_at']}\n\n" + json.dumps(data["details"], indent=2, default=str))
    try:
        if settings.SMTP_SECURITY == "tls":
            client = smtplib.SMTP_SSL(settings.SMTP_HOST, settings.SMTP_PORT, timeout=TIMEOUT,
                                      context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(settings.SMTP_HOST, settings.SMTP_PORT, timeout=TIMEOUT)
        with client:
            if settings.SMTP_SECURITY == "starttls":
                client.starttls(context=ssl.create_default_context())
            if settings.SMTP_USER:
                client.login(settings.SMTP_USER, settings.SMTP_PASSWORD)
            client.send_message(mail)
    except (smtplib.SMTPException, OSError) as exc:
        return f"failed: {exc}"
    return "sent"


def post_webhook(url: str, data: dict) -> str:
    if not url:
        return "not configured"
    request = urllib.request.Request(url, data=json.dumps(data, default=str).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "ispflow-alerts"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return f"sent (HTTP {response.status})"
    except urllib.error.HTTPError as exc:
        return f"failed: HTTP {exc.code}"
    except (urllib.error.URLError, socket.timeout, OSError) as exc:
        return f"failed: {getattr(exc, 'reason', exc)}"


def deliver(settings: Settings, rule, data: dict) -> dict:
    """Send through every channel of the rule; the outcome of each."""
    return {"email": send_email(settings, rule.email, data), "webhook": post_webhook(rule.webhook, data)}
