"""The key a stored flow names its subscriber by: ``holders.id`` of its (account, service) pair.

A flow row once carried the account and service as text, ~20 of its ~150 bytes; four bytes of
key do the same (docs/storage.md). A pair is added the first time a flow is stamped with it,
and that insert commits before any flow that refers to it is written, so no rollback can leave
a flow naming a holder that is not there. Holders are evidence like the flows they name: the
app role adds them and never changes or deletes one (``database_privileges``).
"""
from __future__ import annotations

import threading

import numpy as np
import psycopg2

_ATTEMPTS = 20
Pair = tuple[str, "str | None"]


class Holders:
    """Ids of (account, service) pairs, known ones from memory: one collector's cache."""

    def __init__(self):
        self._ids: dict[Pair, int] = {}
        self._last: tuple[list | None, np.ndarray] = (None, np.zeros(0, dtype=np.int64))
        self._lock = threading.Lock()

    def ids(self, conn, subscribers: list[Pair]) -> np.ndarray:
        """``holders.id`` of each pair, in order (psycopg2 ``conn``; commits when it adds pairs).

        A directory's list is resolved once: batches attributed with it share the list object."""
        last, array = self._last
        if last is subscribers:
            return array
        with self._lock:
            missing = [pair for pair in dict.fromkeys(subscribers) if pair not in self._ids]
            if missing:
                self._ids.update(self._register(conn, missing))
            array = np.array([self._ids[pair] for pair in subscribers], dtype=np.int64)
            self._last = (subscribers, array)
        return array

    @staticmethod
    def _register(conn, pairs: list[Pair]) -> dict[Pair, int]:
        found: dict[Pair, int] = {}
        # A row inserted with a chosen id (OVERRIDING SYSTEM VALUE) can take the id the identity
        # gives next; the pair is then not added, and the next attempt draws a later id.
        for _ in range(_ATTEMPTS):
            missing = [pair for pair in pairs if pair not in found]
            if not missing:
                break
            accounts = [account for account, _ in missing]
            with conn.cursor() as cur:
                cur.execute("insert into ispflow.holders (account, service) "
                            "select * from unnest(%s::text[], %s::text[]) on conflict do nothing",
                            (accounts, [service for _, service in missing]))
                cur.execute("select id, account, service from ispflow.holders where account = any(%s::text[])",
                            (accounts,))
                found.update({(account, service): id_ for id_, account, service in cur.fetchall()})
            conn.commit()
        missing = [pair for pair in pairs if pair not in found]
        if missing:
            raise psycopg2.DataError(f"holders: {len(missing)} (account, service) pairs could not be added")
        return {pair: found[pair] for pair in pairs}
