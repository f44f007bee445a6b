"""Separate keys for separate purposes, all derived from the one configured secret.

``ISPFLOW_SECRET_KEY`` is never used as a key itself: each purpose (signing sessions, CSRF
tokens, encrypting router credentials, keying the audit chain) gets its own key through
HKDF-SHA256 with the purpose as context. A key that leaks through one use (say, a debug dump
of the CSRF secret) then tells nothing about the others, and the credential key can be
replaced (``ispflow keys rotate``) without touching the rest.
"""
from __future__ import annotations

from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PURPOSES = ("session", "csrf", "router-credentials", "audit-chain")


def derive(secret: str, purpose: str, length: int = 32) -> bytes:
    """The key for ``purpose``, derived from ``secret``; the same inputs give the same key."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown key purpose {purpose!r}; expected one of {', '.join(PURPOSES)}")
    if not secret:
        raise ValueError("no secret to derive a key from")
    return HKDF(algorithm=SHA256(), length=length, salt=None, info=b"ispflow/" + purpose.encode()).derive(
        secret.encode())
