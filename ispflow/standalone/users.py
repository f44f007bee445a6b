"""The standalone panel's own users: hashed passwords and one role each."""
from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Session, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash

from ..database import Base
from ..roles import ADMIN, CUSTOMER, ROLES, CurrentUser

MIN_PASSWORD_LENGTH = 10
# The first admin's one-time password is printed on a terminal; it stops working after this.
ONE_TIME_PASSWORD_VALID = timedelta(hours=24)
# Checked when the user name is unknown, so that answer costs what a known user's costs.
_UNKNOWN_USER_HASH = generate_password_hash(secrets.token_urlsafe(16))


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(unique=True)
    password_hash: Mapped[str]
    role: Mapped[str]
    account: Mapped[str | None]
    active: Mapped[bool] = mapped_column(default=True)
    must_change_password: Mapped[bool] = mapped_column(default=False)
    # Sessions carry the generation they were opened in; raising it revokes them all.
    session_generation: Mapped[int] = mapped_column(default=0)
    password_expires_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())

    def set_password(self, password: str) -> None:
        """Replace the password; every session opened before ends (see ``session_generation``)."""
        check_password_strength(password)
        self.password_hash = generate_password_hash(password)
        self.password_expires_at = None
        self.session_generation = (self.session_generation or 0) + 1

    def password_expired(self, now: datetime | None = None) -> bool:
        now = now or datetime.now(timezone.utc)
        return self.password_expires_at is not None and self.password_expires_at <= now

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    def as_current_user(self) -> CurrentUser:
        return CurrentUser(name=self.username, role=self.role, account=self.account)


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")


def create_user(session: Session, username: str, password: str, role: str, account: str | None = None,
                must_change_password: bool = False) -> User:
    """Add a user; raises ValueError with a sentence when a field is wrong."""
    username = (username or "").strip()
    if not username:
        raise ValueError("the user name is empty")
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if role == CUSTOMER and not account:
        raise ValueError("a customer needs --account, the subscriber account they may see")
    if session.execute(sa.select(User.id).where(User.username == username)).first():
        raise ValueError(f"user {username!r} exists already")
    user = User(username=username, role=role, account=account, must_change_password=must_change_password)
    user.set_password(password)
    session.add(user)
    session.flush()
    return user


class PasswordExpired(ValueError):
    """The right one-time password, too late; the message says how to get another."""


def authenticate(session: Session, username: str, password: str) -> User | None:
    """The user these credentials belong to, or None; the password hash is checked in every
    case (unknown, inactive or expired user too) so the answer takes as long either way."""
    user = session.execute(sa.select(User).where(User.username == username)).scalar_one_or_none()
    matches = check_password_hash(user.password_hash if user is not None else _UNKNOWN_USER_HASH, password)
    if user is None or not matches or not user.active:
        return None
    if user.password_expired():
        raise PasswordExpired("This one-time password has expired; an admin issues a new one with "
                              "`ispflow users reset-password NAME`.")
    return user


def issue_one_time_password(user: User) -> str:
    """A new random password valid for ONE_TIME_PASSWORD_VALID, to be replaced at the first login."""
    password = secrets.token_urlsafe(12)
    user.set_password(password)
    user.must_change_password = True
    user.password_expires_at = datetime.now(timezone.utc) + ONE_TIME_PASSWORD_VALID
    return password


def ensure_admin(session: Session, username: str = "admin") -> str | None:
    """Create the first admin with a random one-time password, returned once; None if one exists."""
    if session.execute(sa.select(User.id).where(User.role == ADMIN)).first():
        return None
    user = create_user(session, username, secrets.token_urlsafe(12), ADMIN)
    return issue_one_time_password(user)
