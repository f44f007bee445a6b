"""ispflow: NetFlow data retention and traffic analysis for ISPs, as a Flask module."""
from .extension import ISPFlow
from .roles import ADMIN, COMPLIANCE, CUSTOMER, TECHNICIAN, CurrentUser
from .subscribers import Assignment

__all__ = ["ISPFlow", "CurrentUser", "Assignment", "ADMIN", "TECHNICIAN", "COMPLIANCE", "CUSTOMER"]
