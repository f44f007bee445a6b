"""The standalone panel's own users: hashed passwords and one role each."""
from __future__ import annotations

import secrets
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Session, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash

from ..database import Base
from ..roles import ADMIN, CUSTOMER, ROLES, CurrentUser

MIN_PASSWORD_LENGTH = 10


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(unique=True)
    password_hash: Mapped[str]
    role: Mapped[str]
    account: Mapped[str | None]
    active: Mapped[bool] = mapped_column(default=True)
    must_change_password: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())

    def set_password(self, password: str) -> None:
        check_password_strength(password)
        self.password_hash = generate_password_hash(password)

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


def authenticate(session: Session, username: str, password: str) -> User | None:
    user = session.execute(sa.select(User).where(User.username == username)).scalar_one_or_none()
    if user is None or not user.active or not user.check_password(password):
        return None
    return user


def ensure_admin(session: Session, username: str = "admin") -> str | None:
    """Create the first admin with a random one-time password, returned once; None if one exists."""
    if session.execute(sa.select(User.id).where(User.role == ADMIN)).first():
        return None
    password = secrets.token_urlsafe(12)
    create_user(session, username, password, ADMIN, must_change_password=True)
    return password
