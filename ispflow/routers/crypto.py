"""Router credentials encrypted at rest with Fernet (AES-128-CBC + HMAC-SHA256).

The key is ``ISPFLOW_ENCRYPTION_KEY`` (a Fernet key: 32 url-safe base64 bytes), or, when that
is empty, derived from ``ISPFLOW_SECRET_KEY`` so a standalone install works without another
setting. Changing either makes stored passwords unreadable: they must then be entered again,
and the error says so. Passwords never leave this module except to a driver.
"""
from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken

from ..config import ConfigError, Settings


class CredentialsUnreadable(ConfigError):
    """A stored password cannot be decrypted with the configured key."""


def fernet(settings: Settings) -> Fernet:
    if settings.ENCRYPTION_KEY:
        try:
            return Fernet(settings.ENCRYPTION_KEY.encode())
        except (ValueError, TypeError):
            raise ConfigError(
                "ISPFLOW_ENCRYPTION_KEY is not a Fernet key (32 url-safe base64-encoded bytes); "
                "generate one with: python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'."
            ) from None
    if not settings.SECRET_KEY:
        raise ConfigError("Set ISPFLOW_ENCRYPTION_KEY (or ISPFLOW_SECRET_KEY) to store router passwords encrypted.")
    digest = hashlib.sha256(b"ispflow-router-credentials:" + settings.SECRET_KEY.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def encrypt(settings: Settings, password: str) -> bytes:
    return fernet(settings).encrypt(password.encode("utf-8"))


def decrypt(settings: Settings, token: bytes) -> str:
    try:
        return fernet(settings).decrypt(bytes(token)).decode("utf-8")
    except InvalidToken:
        raise CredentialsUnreadable(
            "The stored router password cannot be decrypted with the configured key "
            "(ISPFLOW_ENCRYPTION_KEY or ISPFLOW_SECRET_KEY changed); enter the password again."
        ) from None
