"""Slowing down password guessing at the login form, without letting anyone lock an account out.

Failed logins are counted over a sliding window per *username at one client address*, and per
address. When either count reaches its limit, further attempts for that username from that address
(or anything from that address) are refused without checking the password until the oldest failure
leaves the window; the form says when to try again. A successful login clears the username's count
at that address. Per-address limits are wider than per-username ones, because one desk's operators
may share an address behind a proxy.

Keying by username *and* address is what keeps the limit from becoming a weapon: failing on
``admin`` from one machine holds ``admin`` at that machine only, so the admin still signs in from
their own desk. An admin can also clear an account's failures at once (``operators unlock`` or the
accounts page): that stamps the account in the database, and every web process drops the failures
it counted for the username the next time it sees a new stamp.

The counts live in the web process's memory: several web processes each keep their own, and a
restart forgets them. That is enough to turn an online guessing attack from thousands of tries a
minute into a handful per window and address; the API's bearer tokens (32 random bytes) need no
such limit.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

ADDRESS_FACTOR = 4
"""An address may fail this many times the per-username limit within the window."""
PRUNE_ABOVE = 10_000
"""Past this many counted keys, every expired count is dropped (a spray of made-up usernames)."""

_Key = tuple[str, str]  # ("user", "<username>@<address>") or ("addr", "<address>")


@dataclass
class LoginThrottle:
    """Counts failed logins and says when a username at an address, or an address, must wait.

    Attributes:
        max_failures: failures per username and address within ``window_s`` before it is held.
        window_s: the window over which failures count, in seconds.
        clock: monotonic seconds (tests pass their own).
    """

    max_failures: int
    window_s: float
    clock: Callable[[], float] = time.monotonic
    _failures: dict[_Key, deque[float]] = field(default_factory=dict)
    _resets_seen: dict[str, Hashable] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_s(self, username: str, address: str, *, reset: Hashable = None) -> float:
        """Seconds until ``username`` may try again from ``address``; 0 when it may try now.

        Args:
            username: the username typed.
            address: the client address.
            reset: the account's reset stamp from the database (None: never reset); when it differs
                from the one last seen, the username's failures at every address are dropped first.
        """
        now = self.clock()
        with self._lock:
            self._honour_reset(_user(username), reset)
            return max(
                self._wait(_user_key(username, address), self.max_failures, now),
                self._wait(_address_key(address), self.max_failures * ADDRESS_FACTOR, now),
            )

    def failed(self, username: str, address: str) -> None:
        """Record a failed login."""
        now = self.clock()
        with self._lock:
            for key in (_user_key(username, address), _address_key(address)):
                self._failures.setdefault(key, deque()).append(now)
            if len(self._failures) > PRUNE_ABOVE:
                for key in list(self._failures):
                    self._wait(key, 1, now)

    def succeeded(self, username: str, address: str) -> None:
        """Forget the username's failures at ``address`` after a successful login there."""
        with self._lock:
            self._failures.pop(_user_key(username, address), None)

    def _honour_reset(self, user: str, reset: Hashable) -> None:
        if reset is None or self._resets_seen.get(user) == reset:
            return
        self._resets_seen[user] = reset
        prefix = user + "@"
        for key in [k for k in self._failures if k[0] == "user" and k[1].startswith(prefix)]:
            del self._failures[key]

    def _wait(self, key: _Key, limit: int, now: float) -> float:
        times = self._failures.get(key)
        if times is None:
            return 0.0
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[key]  # keeps memory bounded by the failures of the last window
            return 0.0
        if len(times) < limit:
            return 0.0
        return times[-limit] + self.window_s - now


def _user(username: str) -> str:
    return username.strip().lower()


def _user_key(username: str, address: str) -> _Key:
    # "@" cannot be part of a username (a-z 0-9 . _ -), so the split is unambiguous for real accounts.
    return ("user", f"{_user(username)}@{address}")


def _address_key(address: str) -> _Key:
    return ("addr", address)
