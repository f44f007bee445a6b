"""The compliance audit trail: append-only, chained with a key the database does not hold, anchored outside.

Each entry's hash is an HMAC (``ISPFLOW_AUDIT_KEY``, or a key derived from ``ISPFLOW_SECRET_KEY``)
over its sequence number, its content and the previous entry's hash. Whoever can write to the
database but does not hold the key can neither change an entry nor re-chain the log after
removing one. Entries written before the chain was keyed (``ispflow.audit_chain.keyed_from``)
keep their plain SHA-256 links; the first keyed entry seals them.

What the chain cannot show on its own, that entries were cut from either end, anchors show:

* the head (sequence number and hash) is written to a checkpoint file apart from the database
  (``ISPFLOW_STATE_DIR/audit-checkpoints.jsonl``, by a periodic job and ``ispflow audit
  checkpoint``) and into every export manifest; an anchored entry that is gone or differs is
  reported;
* retention, the only deletion the database allows (and only to the schema's owner), writes a
  boundary entry naming the first entry it kept, so the oldest entry must be that one (or the
  chain's origin).

Entries say who looked for what and why, never what was found.
"""
from __future__ import annotations

import glob
import hashlib
import hmac
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone

import sqlalchemy as sa

from .config import ConfigError, Settings
from .keys import derive

GENESIS = "0" * 64
_LOCK = 0x15F10A  # advisory lock key serialising appends, so the chain never forks
CHECKPOINT_FILE = "audit-checkpoints.jsonl"
RETENTION_ACTION = "retention"
AUDIT_TABLE = "ispflow.audit_log"
MAX_PROBLEMS = 20

_configured: Settings | None = None


def audit_key(settings: Settings) -> bytes:
    """The chain's HMAC key: AUDIT_KEY, else derived from SECRET_KEY for this purpose alone."""
    if settings.AUDIT_KEY:
        return settings.AUDIT_KEY.encode()
    if settings.SECRET_KEY:
        return derive(settings.SECRET_KEY, "audit-chain")
    raise ConfigError("Set ISPFLOW_AUDIT_KEY (or ISPFLOW_SECRET_KEY): the audit log's chain is keyed with it.")


def configure(settings: Settings) -> None:
    """Use these settings' key for entries appended without one (the panel calls this at start)."""
    global _configured
    _configured = settings


def current_key() -> bytes:
    """The key of this process: the configured settings', else the environment's (jobs, CLI)."""
    return audit_key(_configured or Settings.from_env())


@dataclass(frozen=True)
class Anchor:
    """A head recorded outside the table: entry ``id`` had hash ``hash`` (seen in ``source``)."""

    id: int
    hash: str
    source: str = ""

    def as_dict(self) -> dict:
        return {"id": self.id, "hash": self.hash}


@dataclass(frozen=True)
class Problem:
    """One finding of ``verify``: ``kind`` is changed, removed-middle, removed-start, removed-end,
    anchor-mismatch or anchor-forged."""

    kind: str
    entry: int | None
    message: str


@dataclass(frozen=True)
class Verification:
    ok: bool
    checked: int
    broken_at: int | None = None
    message: str = ""
    problems: tuple[Problem, ...] = field(default_factory=tuple)
    anchors: int = 0


def _canonical_criteria(criteria: dict | None) -> dict:
    return json.loads(json.dumps(criteria or {}, sort_keys=True, default=str))


def _material(prev_hash, at, actor, role, action, case_ref, criteria, row_count, export_sha256) -> list:
    return [prev_hash, at.astimezone(timezone.utc).isoformat(timespec="microseconds"), actor, role, action,
            case_ref, criteria, row_count, export_sha256]


def _encode(values) -> bytes:
    return json.dumps(values, sort_keys=True, separators=(",", ":")).encode()


def _legacy_digest(*material) -> str:
    """The unkeyed link of entries written before the chain was keyed."""
    return hashlib.sha256(_encode(_material(*material))).hexdigest()


def _keyed_digest(key: bytes, entry_id: int, *material) -> str:
    return hmac.new(key, _encode([entry_id, *_material(*material)]), hashlib.sha256).hexdigest()


def record(conn, *, actor: str, action: str, role: str | None = None, criteria: dict | None = None,
           case_ref: str | None = None, row_count: int | None = None, export_sha256: str | None = None,
           key: bytes | None = None) -> int:
    """Append one entry in the caller's transaction (the caller commits); returns its id."""
    conn.execute(sa.text("select pg_advisory_xact_lock(:key)"), {"key": _LOCK})
    latest = head(conn)
    return _append(conn, latest.hash if latest else GENESIS, key or current_key(), actor=actor, action=action,
                   role=role, criteria=criteria, case_ref=case_ref, row_count=row_count,
                   export_sha256=export_sha256)


def _append(conn, prev: str, key: bytes, *, actor, action, role, criteria, case_ref, row_count,
            export_sha256) -> int:
    entry_id = conn.execute(sa.text("select nextval(pg_get_serial_sequence('ispflow.audit_log', 'id'))")).scalar()
    at = datetime.now(timezone.utc)
    criteria = _canonical_criteria(criteria)
    digest = _keyed_digest(key, entry_id, prev, at, actor, role, action, case_ref, criteria, row_count,
                           export_sha256)
    conn.execute(
        sa.text(
            "insert into ispflow.audit_log (id, at, actor, role, action, case_ref, criteria, row_count, "
            "export_sha256, prev_hash, hash) values (:id, :at, :actor, :role, :action, :case_ref, "
            "cast(:criteria as jsonb), :row_count, :export_sha256, :prev, :hash)"
        ),
        {"id": entry_id, "at": at, "actor": actor, "role": role, "action": action, "case_ref": case_ref,
         "criteria": json.dumps(criteria), "row_count": row_count, "export_sha256": export_sha256,
         "prev": prev, "hash": digest},
    )
    return entry_id


def head(conn) -> Anchor | None:
    """The newest entry's sequence number and hash (None while the log is empty)."""
    row = conn.execute(sa.text("select id, hash from ispflow.audit_log order by id desc limit 1")).first()
    return Anchor(row.id, row.hash, "database") if row else None


def _chain_settings(conn):
    return conn.execute(sa.text("select keyed_from, origin_id, origin_hash from ispflow.audit_chain")).first()


def _latest_boundary(conn):
    """The newest retention entry of the audit log that names what it kept."""
    return conn.execute(sa.text(
        "select id, criteria from ispflow.audit_log where action = :action and criteria->>'table' = :table "
        "and criteria ? 'first_kept' order by id desc limit 1"), {"action": RETENTION_ACTION, "table": AUDIT_TABLE}
    ).first()


def verify(conn, anchors=(), key: bytes | None = None, batch: int = 10_000) -> Verification:
    """Recompute every link oldest first, check where the log starts, and compare the anchors.

    Reports what it finds by kind: entries changed, removed from the middle, from the start or
    from the end (beyond an anchor), and anchors that do not match or were forged.
    """
    key = key or current_key()
    anchors = list(anchors)
    problems = [a for a in anchors if isinstance(a, Problem)]
    anchors = [a for a in anchors if isinstance(a, Anchor)]
    chain = _chain_settings(conn)
    keyed_from = chain.keyed_from if chain else 1
    checked, expected_prev, last_id, first, newest = 0, None, 0, None, None
    hashes = {a.id: None for a in anchors}
    while True:
        rows = conn.execute(
            sa.text("select id, at, actor, role, action, case_ref, criteria, row_count, export_sha256, prev_hash, "
                    "hash from ispflow.audit_log where id > :after order by id limit :limit"),
            {"after": last_id, "limit": batch},
        ).all()
        if not rows:
            break
        for row in rows:
            first = first or row
            newest = row
            if row.id in hashes:
                hashes[row.id] = row.hash
            if expected_prev is not None and row.prev_hash != expected_prev:
                problems.append(Problem("removed-middle", row.id, f"Entry {row.id} does not follow entry {last_id}: "
                                        "entries between them were removed (or it was changed)."))
            material = (row.prev_hash, row.at, row.actor, row.role, row.action, row.case_ref,
                        _canonical_criteria(row.criteria), row.row_count, row.export_sha256)
            digest = (_keyed_digest(key, row.id, *material) if row.id >= keyed_from else _legacy_digest(*material))
            if not hmac.compare_digest(digest, row.hash):
                problems.append(Problem("changed", row.id, f"Entry {row.id} was changed after it was written "
                                        "(or written without the audit key)."))
            expected_prev, last_id = row.hash, row.id
            checked += 1
    if first is not None:
        problems += _check_start(conn, first, chain)
    problems += _check_anchors(anchors, hashes, first, newest)
    problems = sorted(problems, key=lambda p: (p.entry is None, p.entry or 0))[:MAX_PROBLEMS]
    if problems:
        return Verification(False, checked, problems[0].entry, problems[0].message, tuple(problems), len(anchors))
    shown = f" against {len(anchors)} anchors" if anchors else ""
    return Verification(True, checked, message=f"{checked} entries verified{shown}.", anchors=len(anchors))


def _check_start(conn, first, chain) -> list[Problem]:
    boundary = _latest_boundary(conn)
    if boundary is not None:
        kept = boundary.criteria.get("first_kept")
        if kept is None:  # retention emptied the log; its own entry starts what is left
            expected, what = (boundary.id, None), f"retention (entry {boundary.id}) deleted every earlier entry"
        else:
            expected, what = (kept["id"], kept["hash"]), f"retention (entry {boundary.id}) kept entries from {kept['id']}"
    elif chain is not None and chain.origin_id is not None:
        expected, what = (chain.origin_id, chain.origin_hash), f"the log started at entry {chain.origin_id} when it was keyed"
    else:
        if first.prev_hash == GENESIS:
            return []
        return [Problem("removed-start", first.id, f"Entries before entry {first.id} were removed: it does not start "
                        "the chain and no retention recorded deleting them.")]
    if first.id == expected[0] and (expected[1] is None or first.hash == expected[1]):
        return []
    if first.id < expected[0]:
        return []  # older entries retention should have deleted are still there: nothing is missing
    return [Problem("removed-start", first.id, f"Entries before entry {first.id} were removed: {what}.")]


def _check_anchors(anchors, hashes, first, newest) -> list[Problem]:
    problems = []
    for anchor in sorted(anchors, key=lambda a: a.id):
        if first is not None and anchor.id < first.id:
            continue  # before the oldest entry: the start check says whether that is retention's doing
        found = hashes.get(anchor.id)
        if newest is None or anchor.id > newest.id:
            problems.append(Problem("removed-end", anchor.id, f"Entries were removed from the end: {anchor.source} "
                                    f"anchors entry {anchor.id}, but the log ends at "
                                    f"{newest.id if newest else 'nothing (it is empty)'}."))
        elif found is None:
            problems.append(Problem("removed-middle", anchor.id, f"Entry {anchor.id}, anchored in {anchor.source}, "
                                    "was removed."))
        elif not hmac.compare_digest(found, anchor.hash):
            problems.append(Problem("anchor-mismatch", anchor.id, f"Entry {anchor.id} is not the one anchored in "
                                    f"{anchor.source}: it was rewritten."))
    return problems


def unprotected(conn) -> str | None:
    """Why this connection's role could remove entries unseen by the database's own guards, or None."""
    role = conn.execute(sa.text(
        "select current_user as name, rolsuper, has_table_privilege('ispflow.audit_log', 'DELETE') as can_delete, "
        "pg_has_role(current_user, (select relowner from pg_class where oid = 'ispflow.audit_log'::regclass), "
        "'USAGE') as owns from pg_roles where rolname = current_user")).one()
    if role.rolsuper or role.can_delete or role.owns:
        return (f"ispflow connects as {role.name}, who can delete audit entries and switch off their guard; "
                "only the anchors would show it. Give ISPFLOW_DATABASE_URL a role of its own (ispflow db upgrade).")
    return None


# --- anchors outside the database ----------------------------------------------------------
def checkpoint_path(settings: Settings) -> str:
    return os.path.join(settings.STATE_DIR, CHECKPOINT_FILE)


def _checkpoint_mac(key: bytes, entry_id: int, digest: str, at: str) -> str:
    return hmac.new(key, _encode(["checkpoint", entry_id, digest, at]), hashlib.sha256).hexdigest()


def write_checkpoint(conn, path: str, key: bytes | None = None) -> Anchor | None:
    """Append the current head to the checkpoint file (one JSON line, signed); None if the log is empty."""
    key = key or current_key()
    latest = head(conn)
    if latest is None:
        return None
    at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    line = json.dumps({"at": at, "id": latest.id, "hash": latest.hash,
                       "mac": _checkpoint_mac(key, latest.id, latest.hash, at)}, sort_keys=True)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return Anchor(latest.id, latest.hash, f"checkpoint of {at}")


def read_checkpoints(path: str, key: bytes | None = None) -> list:
    """The checkpoints in ``path`` as Anchors; a line that was altered comes back as a Problem."""
    if not os.path.exists(path):
        return []
    key = key or current_key()
    found = []
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                at, entry_id, digest = str(data["at"]), int(data["id"]), str(data["hash"])
                genuine = hmac.compare_digest(_checkpoint_mac(key, entry_id, digest, at), str(data["mac"]))
            except (ValueError, KeyError, TypeError):
                genuine = False
            if genuine:
                found.append(Anchor(entry_id, digest, f"the checkpoint of {at}"))
            else:
                found.append(Problem("anchor-forged", None, f"Line {number} of {path} was altered: it is not a "
                                     "checkpoint ispflow wrote."))
    return found


def read_manifest_anchors(paths) -> list:
    """The audit heads recorded in export manifests."""
    found = []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as source:
                data = json.load(source).get("audit_head")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(data, dict) and isinstance(data.get("id"), int) and isinstance(data.get("hash"), str):
            found.append(Anchor(data["id"], data["hash"], f"the manifest {os.path.basename(path)}"))
    return found


def anchors_of(settings: Settings, manifests=()) -> list:
    """Every anchor this installation keeps: its checkpoints and the manifests of its exports."""
    paths = sorted(glob.glob(os.path.join(glob.escape(settings.EXPORT_DIR), "*.manifest.json"))) + list(manifests)
    return read_checkpoints(checkpoint_path(settings), audit_key(settings)) + read_manifest_anchors(paths)


def checkpoint_job(settings: Settings | None = None) -> dict | None:
    """The periodic job (also ``ispflow audit checkpoint``): anchor the head outside the database."""
    from .database import engine_for
    from .jobs import job_settings

    settings = settings or job_settings()
    with engine_for(settings.DATABASE_URL).connect() as conn:
        anchor = write_checkpoint(conn, checkpoint_path(settings), audit_key(settings))
    return anchor.as_dict() if anchor else None


# --- retention ------------------------------------------------------------------------------
def delete_expired(conn, before: datetime, *, actor: str, criteria: dict | None = None,
                   key: bytes | None = None) -> int:
    """Remove entries older than ``before`` and append the boundary entry; the caller (the owner) commits.

    The boundary names the first entry kept (with its hash) and the last one deleted, so
    ``verify`` can tell retention's deletions from anyone else's.
    """
    key = key or current_key()
    conn.execute(sa.text("select pg_advisory_xact_lock(:key)"), {"key": _LOCK})
    latest = head(conn)
    last_deleted = conn.execute(sa.text("select id, hash from ispflow.audit_log where at < :before "
                                        "order by id desc limit 1"), {"before": before}).first()
    if last_deleted is None:
        return 0
    conn.execute(sa.text("select set_config('ispflow.audit_retention_before', :before, true)"),
                 {"before": before.isoformat()})
    deleted = conn.execute(sa.text("delete from ispflow.audit_log where at < :before"), {"before": before}).rowcount
    conn.execute(sa.text("select set_config('ispflow.audit_retention_before', '', true)"))
    kept = conn.execute(sa.text("select id, hash from ispflow.audit_log order by id limit 1")).first()
    boundary = {**(criteria or {}), "table": AUDIT_TABLE, "rows": deleted,
                "first_kept": {"id": kept.id, "hash": kept.hash} if kept else None,
                "deleted_through": {"id": last_deleted.id, "hash": last_deleted.hash}}
    _append(conn, latest.hash, key, actor=actor, action=RETENTION_ACTION, role=None, criteria=boundary,
            case_ref=None, row_count=deleted, export_sha256=None)
    return deleted
