"""Signals a host panel may subscribe to (blinker). Each docstring is the contract.

A receiver runs in the process that sends the signal, and each docstring names that process.
Signals from jobs are sent in the rq worker: start it inside the host's app
(``ispflow --app panel:create_app worker``, or ``ISPFLOW_APP``) and the receivers the host
connects when its code is imported or its factory runs are connected there too.
"""
from blinker import Namespace

_signals = Namespace()

router_provisioned = _signals.signal(
    "router-provisioned",
    doc="Sent with the router's name after a provisioning job verified the router's export. "
    "Keyword arguments: ``router`` (name), ``vendor``. "
    "Process: the worker running the job (the panel's Provision button), or ``ispflow routers provision``.",
)
export_made = _signals.signal(
    "export-made",
    doc="Sent with the requesting user's name when a CSV export finished, file and manifest written. "
    "Keyword arguments: ``export_id``, ``case_ref``, ``row_count``, ``sha256``. "
    "Process: the panel's web process for exports of up to ``SYNC_EXPORT_ROWS`` rows, the worker for larger ones.",
)
retention_ran = _signals.signal(
    "retention-ran",
    doc="Sent by the retention job after it dropped expired data (not when there was nothing to drop). "
    "Keyword arguments: ``dropped`` (list of dicts with table, range, rows, bytes). "
    "Process: the worker running the daily job, or ``ispflow retention run``.",
)
collector_down = _signals.signal(
    "collector-down",
    doc="Sent when the module is enabled but not collecting. Keyword argument: ``reason`` (one sentence "
    "for people). Process: the worker's every-minute liveness job, once per stop; and each panel process "
    "that notices the change itself while serving a page.",
)
alert_raised = _signals.signal(
    "alert-raised",
    doc="Sent with the rule's name for each new alert (not while an incident continues), in the "
    "process that evaluated the rule: the rq worker running the ``alerts`` periodic job, or the "
    "CLI for ``ispflow alerts test`` (then ``alert_id`` is None and ``incident`` is 'test'). "
    "Keyword arguments: ``source``, ``alert_id``, ``rule``, ``kind``, ``incident``, ``message``, "
    "``details`` (dict), ``raised_at`` (ISO 8601) — the webhook's JSON.",
)
