"""Slowing down password guessing at the login form.

Failed logins are counted per username and per client address over a sliding window. When either
count reaches its limit, further attempts for that username (or from that address) are refused
without checking the password until the oldest failure leaves the window; the form says when to try
again. A successful login clears the username's count. Per-address limits are wider than
per-username ones, because one desk's operators may share an address behind a proxy.

The counts live in the web process's memory: several web processes each keep their own, and a
restart forgets them. That is enough to turn an online guessing attack from thousands of tries a
minute into a handful per window; the API's bearer tokens (32 random bytes) need no such limit.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

ADDRESS_FACTOR = 4
"""An address may fail this many times the per-username limit within the window."""
PRUNE_ABOVE = 10_000
"""Past this many counted keys, every expired count is dropped (a spray of made-up usernames)."""


@dataclass
class LoginThrottle:
    """Counts failed logins and says when a username or an address must wait.

    Attributes:
        max_failures: failures per username within ``window_s`` before it is held.
        window_s: the window over which failures count, in seconds.
        clock: monotonic seconds (tests pass their own).
    """

    max_failures: int
    window_s: float
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_s(self, username: str, address: str) -> float:
        """Seconds until ``username`` may try again from ``address``; 0 when it may try now."""
        now = self.clock()
        with self._lock:
            return max(
                self._wait(_user_key(username), self.max_failures, now),
                self._wait(_address_key(address), self.max_failures * ADDRESS_FACTOR, now),
            )

    def failed(self, username: str, address: str) -> None:
        """Record a failed login."""
        now = self.clock()
        with self._lock:
            for key in (_user_key(username), _address_key(address)):
                self._failures.setdefault(key, deque()).append(now)
            if len(self._failures) > PRUNE_ABOVE:
                for key in list(self._failures):
                    self._wait(key, 1, now)

    def succeeded(self, username: str) -> None:
        """Forget the username's failures after a successful login."""
        with self._lock:
            self._failures.pop(_user_key(username), None)

    def _wait(self, key: str, limit: int, now: float) -> float:
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


def _user_key(username: str) -> str:
    return "user:" + username.strip().lower()


def _address_key(address: str) -> str:
    return "addr:" + address
