"""Searching the retained flows: criteria, queries, who-held lookups and CSV exports.

No Flask here: the panel (``ispflow.web.search``), the CLI and the rq jobs call the same
functions (``service`` for audited answers, ``jobs`` for exports).
"""
from .criteria import Criteria, CriteriaError, parse_criteria  # noqa: F401  (the public names)
