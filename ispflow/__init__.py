"""ispflow: NetFlow data retention and traffic analysis for ISPs, as a Flask module.

Importing the package loads no Flask: the collector, the worker's jobs and the core modules
need none. ``ISPFlow``, the Flask extension, is imported when a host first asks for it.
"""
from .roles import ADMIN, COMPLIANCE, CUSTOMER, TECHNICIAN, CurrentUser
from .subscribers import Assignment

__all__ = ["ISPFlow", "CurrentUser", "Assignment", "ADMIN", "TECHNICIAN", "COMPLIANCE", "CUSTOMER"]


def __getattr__(name):
    if name == "ISPFlow":
        from .extension import ISPFlow

        return ISPFlow
    raise AttributeError(f"module 'ispflow' has no attribute {name!r}")
