"""Signals a host panel may subscribe to (blinker). Each docstring is the contract."""
from blinker import Namespace

_signals = Namespace()

router_provisioned = _signals.signal(
    "router-provisioned",
    doc="Sent with the router's name after a provisioning job verified the router's export. "
    "Keyword arguments: ``router`` (name), ``vendor``.",
)
export_made = _signals.signal(
    "export-made",
    doc="Sent with the requesting user's name when a CSV export finished. "
    "Keyword arguments: ``case_ref``, ``row_count``, ``sha256``.",
)
retention_ran = _signals.signal(
    "retention-ran",
    doc="Sent by the retention job after it dropped expired data. "
    "Keyword arguments: ``dropped`` (list of dicts with table, range, rows, bytes).",
)
collector_down = _signals.signal(
    "collector-down",
    doc="Sent by the liveness job when the module is enabled but not collecting. "
    "Keyword argument: ``reason`` (one sentence for people).",
)
alert_raised = _signals.signal(
    "alert-raised",
    doc="Sent with the rule's name for each new alert (not while an incident continues), in the "
    "process that evaluated the rule: the rq worker running the ``alerts`` periodic job, or the "
    "CLI for ``ispflow alerts test`` (then ``alert_id`` is None and ``incident`` is 'test'). "
    "Keyword arguments: ``source``, ``alert_id``, ``rule``, ``kind``, ``incident``, ``message``, "
    "``details`` (dict), ``raised_at`` (ISO 8601) — the webhook's JSON.",
)
