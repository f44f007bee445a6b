"""ORM classes for ``ispflow.routers`` (one row per managed router) and ``ispflow.router_jobs``."""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..database import Base


class Router(Base):
    __tablename__ = "routers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(unique=True)
    vendor: Mapped[str]
    host: Mapped[str]
    port: Mapped[int | None]
    username: Mapped[str]
    secret: Mapped[bytes] = mapped_column(sa.LargeBinary)  # Fernet token, see crypto.py
    use_tls: Mapped[bool] = mapped_column(default=False)
    interfaces: Mapped[str] = mapped_column(default="all")
    netflow_version: Mapped[str] = mapped_column(default="9")
    collector: Mapped[str | None]  # HOST:PORT; None means ISPFLOW_EXPORT_TARGET
    source_interface: Mapped[str | None]
    timeout_s: Mapped[float] = mapped_column(default=15.0)
    os_version: Mapped[str | None]
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())
    provisioned_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    provisioned_collector: Mapped[str | None]
    verified: Mapped[bool] = mapped_column(default=False)
    verified_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    ntp_synced: Mapped[bool | None]
    ntp_detail: Mapped[str | None]
    clock_skew_s: Mapped[float | None]
    checked_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    last_error: Mapped[str | None]
    # The API-SSL certificate or SSH host key the router presented when first reached
    # (see RouterDriver.presented_key); a different one is refused until an admin re-pins.
    pinned_key: Mapped[str | None]
    pinned_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))

    @property
    def interface_list(self) -> tuple[str, ...]:
        """The watched interfaces; empty means all (RouterOS's ``interfaces=all``)."""
        if self.interfaces.strip().lower() in ("", "all"):
            return ()
        return tuple(part.strip() for part in self.interfaces.split(",") if part.strip())


class RouterJob(Base):
    __tablename__ = "router_jobs"
    __table_args__ = (sa.Index("router_jobs_router", "router_id", sa.text("created_at desc")),)

    id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    router_id: Mapped[int] = mapped_column(sa.ForeignKey(Router.id, ondelete="CASCADE"))
    action: Mapped[str]
    state: Mapped[str] = mapped_column(default="queued")
    requested_by: Mapped[str | None]
    rq_job_id: Mapped[str | None]
    log: Mapped[str] = mapped_column(default="")
    progress: Mapped[int] = mapped_column(sa.SmallInteger, default=0)
    message: Mapped[str | None]
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())
    started_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))

    @property
    def done(self) -> bool:
        return self.state in ("finished", "failed")
