"""Login throttling in Redis: failed attempts counted per account and per client address.

Counting both stops guessing one account from many addresses and many accounts from one
address. A refused attempt is not checked against the password at all, so a throttled
attacker learns nothing; a success clears the account's count (not the address's: one valid
login must not reset an address that is guessing other accounts).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from redis import Redis

ACCOUNT_LIMIT = 5      # failed attempts on one account ...
ADDRESS_LIMIT = 20     # ... or from one client address ...
WINDOW_S = 15 * 60     # ... within this many seconds of the first of them


@dataclass(frozen=True)
class Throttle:
    redis: Redis
    prefix: str = "ispflow:login"

    def _keys(self, username: str, address: str) -> tuple[str, str]:
        # Hashed so a user name (any text) cannot shape the key space.
        account = hashlib.sha256(username.strip().lower().encode()).hexdigest()
        return f"{self.prefix}:account:{account}", f"{self.prefix}:address:{address}"

    def retry_after(self, username: str, address: str) -> int:
        """Seconds until another attempt is allowed; 0 when it is allowed now."""
        account_key, address_key = self._keys(username, address)
        waits = [0]
        for key, limit in ((account_key, ACCOUNT_LIMIT), (address_key, ADDRESS_LIMIT)):
            count = self.redis.get(key)
            if count is not None and int(count) >= limit:
                waits.append(max(self.redis.ttl(key), 1))
        return max(waits)

    def failed(self, username: str, address: str) -> None:
        for key in self._keys(username, address):
            with self.redis.pipeline() as pipe:
                pipe.incr(key)
                pipe.expire(key, WINDOW_S, nx=True)
                pipe.execute()

    def succeeded(self, username: str, address: str) -> None:
        self.redis.delete(self._keys(username, address)[0])
