"""The four roles a host panel's users can have, and who may see what."""
from __future__ import annotations

from dataclasses import dataclass

ADMIN = "admin"
TECHNICIAN = "technician"
COMPLIANCE = "compliance"
CUSTOMER = "customer"
ROLES = (ADMIN, TECHNICIAN, COMPLIANCE, CUSTOMER)
STAFF = (ADMIN, TECHNICIAN, COMPLIANCE)


@dataclass(frozen=True)
class CurrentUser:
    """What ispflow needs to know about the logged-in user of the host panel.

    ``account`` is the subscriber account a customer may see; staff have none.
    """

    name: str
    role: str
    account: str | None = None

    def __post_init__(self):
        if self.role not in ROLES:
            raise ValueError(f"unknown role {self.role!r}; expected one of {', '.join(ROLES)}")
        if self.role == CUSTOMER and not self.account:
            raise ValueError("a customer must come with the subscriber account they may see")
