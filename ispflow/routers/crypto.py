"""Router credentials encrypted at rest with Fernet (AES-128-CBC + HMAC-SHA256).

The key is ``ISPFLOW_ENCRYPTION_KEY`` (a Fernet key: 32 url-safe base64 bytes), or, when that
is empty, the credential key derived from ``ISPFLOW_SECRET_KEY`` (``keys.derive``) so a
standalone install works without another setting. Keys listed in
``ISPFLOW_ENCRYPTION_KEY_PREVIOUS`` are still accepted for reading, so the key can be
replaced while routers keep working; ``ispflow keys rotate`` then re-encrypts every stored
password with the current key. Passwords never leave this module except to a driver.
"""
from __future__ import annotations

import base64
import hashlib

import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy.orm import Session

from ..config import ConfigError, Settings
from ..keys import derive


class CredentialsUnreadable(ConfigError):
    """A stored password cannot be decrypted with the configured key."""


def _fernet_key(text: str, name: str) -> Fernet:
    try:
        return Fernet(text.encode())
    except (ValueError, TypeError):
        raise ConfigError(
            f"{name} is not a Fernet key (32 url-safe base64-encoded bytes); generate one with: ispflow keys generate."
        ) from None


def _current(settings: Settings) -> Fernet:
    if settings.ENCRYPTION_KEY:
        return _fernet_key(settings.ENCRYPTION_KEY, "ISPFLOW_ENCRYPTION_KEY")
    if not settings.SECRET_KEY:
        raise ConfigError("Set ISPFLOW_ENCRYPTION_KEY (or ISPFLOW_SECRET_KEY) to store router passwords encrypted.")
    return Fernet(base64.urlsafe_b64encode(derive(settings.SECRET_KEY, "router-credentials")))


def _readers(settings: Settings) -> list[Fernet]:
    """Every key a stored password may be encrypted with, the current one first."""
    readers = [_current(settings)]
    readers += [_fernet_key(key, "ISPFLOW_ENCRYPTION_KEY_PREVIOUS") for key in settings.ENCRYPTION_KEY_PREVIOUS]
    if settings.SECRET_KEY:
        # Before keys were derived with HKDF, the secret was hashed with a prefix: still readable.
        legacy = hashlib.sha256(b"ispflow-router-credentials:" + settings.SECRET_KEY.encode()).digest()
        readers.append(Fernet(base64.urlsafe_b64encode(legacy)))
    return readers


def fernet(settings: Settings) -> MultiFernet:
    """Encrypts with the current key, decrypts with any accepted one."""
    return MultiFernet(_readers(settings))


def encrypt(settings: Settings, password: str) -> bytes:
    return fernet(settings).encrypt(password.encode("utf-8"))


def decrypt(settings: Settings, token: bytes) -> str:
    try:
        return fernet(settings).decrypt(bytes(token)).decode("utf-8")
    except InvalidToken:
        raise CredentialsUnreadable(
            "The stored router password cannot be decrypted with the configured key "
            "(ISPFLOW_ENCRYPTION_KEY or ISPFLOW_SECRET_KEY changed; a former key belongs in "
            "ISPFLOW_ENCRYPTION_KEY_PREVIOUS); enter the password again."
        ) from None


def rotate(session: Session, settings: Settings) -> tuple[list[str], list[str]]:
    """Re-encrypt every router's password with the current key; the caller commits.

    Returns (names re-encrypted, names no accepted key can read). Unreadable ones are left
    as they are: nothing is lost, and they work again once their key is listed as previous.
    """
    from .models import Router

    keys = fernet(settings)
    done, unreadable = [], []
    for router in session.execute(sa.select(Router).order_by(Router.name)).scalars():
        try:
            router.secret = keys.rotate(bytes(router.secret))
        except InvalidToken:
            unreadable.append(router.name)
        else:
            done.append(router.name)
    session.flush()
    return done, unreadable
