"""Read-through caches in front of the registers: ``CachedAddressRegister`` and ``CachedFastlegeRegister``.

Each wraps a register and answers the same interface. What they keep and when they ask again:

* **TTL.** An answer is fresh for ``ttl_s``; a "no such entry" answer (None) for the shorter
  ``negative_ttl_s``, so a party that appears in the register is found soon.
* **Bounded.** At most ``max_entries`` answers, the least recently used dropped first.
* **Stale while the register is down.** When the register raises ``RegisterUnavailable`` and an
  answer for the same question was stored less than ``stale_max_s`` ago, that stale answer is served,
  a warning is logged (the HER-id or kommunenummer; nothing at all for a person look-up) and
  ``stale_served`` counts it. Without one the error is raised. Any other error (``RegisterRefused``)
  is raised and nothing is stored.
* **One question at a time.** Threads asking the same question while it is being asked wait for
  that answer instead of asking the register again.
* **Counters** for metrics: ``hits`` (answered fresh from the cache), ``misses`` (the register was
  asked, or a thread waited for its answer), ``stale_served``, ``errors`` (the register raised).

Person numbers are never kept as keys: a person look-up is keyed by a keyed hash (BLAKE2b with a
random key made per process), so the cache holds no person number, and the answers hold none either.

The clock is injectable (monotonic seconds), for tests.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Generic, TypeVar

from edi_gateway.errors import RegisterUnavailable
from edi_gateway.logging import get_logger
from edi_gateway.registers.base import AddressRegister, FastlegeRegister, GpAssignment, Virksomhet
from edi_gateway.registers.nhn_ar import pem_not_after

log = get_logger(__name__)

Clock = Callable[[], float]
"""Monotonic seconds (``time.monotonic`` unless a test drives it)."""

_V = TypeVar("_V")
_NO_DETAILS: Final[dict[str, object]] = {}


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """How long answers are kept and how many.

    Attributes:
        ttl_s: how long an answer is fresh.
        negative_ttl_s: how long a "no such entry" answer is fresh (normally shorter).
        stale_max_s: how old (since it was stored) an answer may be and still be served while the
            register is unavailable; 0 turns serving stale answers off.
        max_entries: the most answers kept (least recently used dropped first).
    """

    ttl_s: float = 3600.0
    negative_ttl_s: float = 300.0
    stale_max_s: float = 86_400.0
    max_entries: int = 10_000

    def __post_init__(self) -> None:
        if self.ttl_s <= 0 or self.negative_ttl_s <= 0 or self.stale_max_s < 0 or self.max_entries <= 0:
            raise ValueError("cache TTLs and size must be positive (stale_max_s may be 0)")


@dataclass(frozen=True, slots=True)
class CacheStats:
    """A snapshot of a cache's counters (monotonic since it was made) and its current size."""

    hits: int
    misses: int
    stale_served: int
    errors: int
    entries: int


@dataclass(slots=True)
class _Entry:
    value: Any
    stored_at: float


class ReadThroughCache(Generic[_V]):
    """The thread-safe TTL + LRU + stale-while-revalidate store behind both register caches.

    Args:
        policy: the TTLs and the size bound.
        clock: monotonic seconds.
        register: the register's name, for log lines.
    """

    def __init__(self, policy: CachePolicy, *, clock: Clock = time.monotonic, register: str) -> None:
        self._policy = policy
        self._clock = clock
        self._register = register
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._asking: dict[Hashable, Future[Any]] = {}
        self._hits = 0
        self._misses = 0
        self._stale_served = 0
        self._errors = 0

    def get(
        self,
        key: Hashable,
        load: Callable[[], _V],
        *,
        describe: dict[str, object] | None = None,
    ) -> _V:
        """Return the fresh answer for ``key``, asking ``load`` when there is none.

        Args:
            key: the question.
            load: asks the register.
            describe: what a warning about a stale answer may say about the question (ids only);
                None for questions about a person: then the warning names nothing.

        Raises:
            RegisterUnavailable: the register is unavailable and no stale answer is young enough.
            Exception: anything else ``load`` raises, unchanged.
        """
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and self._fresh(entry):
                self._entries.move_to_end(key)
                self._hits += 1
                value: _V = entry.value
                return value
            self._misses += 1
            asking = self._asking.get(key)
            if asking is None:
                asking = self._asking[key] = Future()
                owner = True
            else:
                owner = False
        if not owner:
            waited: _V = asking.result()
            return waited
        try:
            value = self._ask(key, load, describe)
        except BaseException as exc:
            asking.set_exception(exc)
            raise
        else:
            asking.set_result(value)
            return value
        finally:
            with self._lock:
                del self._asking[key]

    def _ask(self, key: Hashable, load: Callable[[], _V], describe: dict[str, object] | None) -> _V:
        try:
            value = load()
        except RegisterUnavailable as exc:
            with self._lock:
                self._errors += 1
                entry = self._entries.get(key)
                now = self._clock()
                if entry is None or now - entry.stored_at >= self._policy.stale_max_s:
                    raise
                self._stale_served += 1
                self._entries.move_to_end(key)
                stale: _V = entry.value
                age_s = round(now - entry.stored_at)
            log.warning(
                "register unavailable; serving a stale answer",
                register=self._register,
                age_s=age_s,
                error=type(exc).__name__,
                **(describe if describe is not None else _NO_DETAILS),
            )
            return stale
        except BaseException:
            with self._lock:
                self._errors += 1
            raise
        with self._lock:
            self._entries[key] = _Entry(value, self._clock())
            self._entries.move_to_end(key)
            while len(self._entries) > self._policy.max_entries:
                self._entries.popitem(last=False)
        return value

    def _fresh(self, entry: _Entry) -> bool:
        ttl = self._policy.negative_ttl_s if entry.value is None else self._policy.ttl_s
        return self._clock() - entry.stored_at < ttl

    def stats(self) -> CacheStats:
        """The counters and the number of answers kept."""
        with self._lock:
            return CacheStats(self._hits, self._misses, self._stale_served, self._errors, len(self._entries))

    def clear(self) -> None:
        """Forget every answer (the counters stay)."""
        with self._lock:
            self._entries.clear()


class CachedAddressRegister:
    """An ``AddressRegister`` answering from a read-through cache in front of another one.

    Args:
        inner: the register asked on a miss.
        policy: TTLs, the stale limit and the size bound.
        clock: monotonic seconds.
    """

    def __init__(
        self, inner: AddressRegister, policy: CachePolicy | None = None, *, clock: Clock = time.monotonic
    ) -> None:
        self._inner = inner
        self._cache: ReadThroughCache[Any] = ReadThroughCache(
            policy or CachePolicy(), clock=clock, register="adresseregister"
        )

    @property
    def inner(self) -> AddressRegister:
        """The register behind the cache."""
        return self._inner

    def kommune(self, kommunenummer: str) -> Virksomhet | None:
        """Return the kommune with this kommunenummer, or None (cached)."""
        found: Virksomhet | None = self._cache.get(
            ("kommune", kommunenummer),
            lambda: self._inner.kommune(kommunenummer),
            describe={"kommunenummer": kommunenummer},
        )
        return found

    def virksomhet(self, her_id: int) -> Virksomhet | None:
        """Return the virksomhet with this HER-id, or None (cached)."""
        found: Virksomhet | None = self._cache.get(
            ("virksomhet", her_id), lambda: self._inner.virksomhet(her_id), describe={"her_id": her_id}
        )
        return found

    def parent_of(self, her_id: int) -> Virksomhet | None:
        """Return the virksomhet owning ``her_id``, or None (cached)."""
        found: Virksomhet | None = self._cache.get(
            ("parent_of", her_id), lambda: self._inner.parent_of(her_id), describe={"her_id": her_id}
        )
        return found

    def certificate_pem(self, her_id: int) -> bytes | None:
        """Return the signing certificate of the virksomhet owning ``her_id``, or None (cached)."""
        found: bytes | None = self._cache.get(
            ("certificate_pem", her_id),
            lambda: self._inner.certificate_pem(her_id),
            describe={"her_id": her_id},
        )
        return found

    def certificate_not_after(self, her_id: int) -> datetime | None:
        """Return when the (cached) signing certificate of the owner of ``her_id`` expires, or None."""
        pem = self.certificate_pem(her_id)
        return None if pem is None else pem_not_after(pem)

    def all_virksomheter(self) -> tuple[Virksomhet, ...]:
        """Every registered virksomhet (cached as one answer)."""
        found: tuple[Virksomhet, ...] = self._cache.get(
            ("all_virksomheter",), self._inner.all_virksomheter, describe={"question": "all_virksomheter"}
        )
        return found

    def stats(self) -> CacheStats:
        """The cache's counters, for metrics."""
        return self._cache.stats()

    def clear(self) -> None:
        """Forget every kept answer (after a certificate was replaced, say)."""
        self._cache.clear()


class CachedFastlegeRegister:
    """A ``FastlegeRegister`` answering from a read-through cache in front of another one.

    Keys are keyed hashes of the person number; stale answers are logged without any identifier.

    Args:
        inner: the register asked on a miss.
        policy: TTLs, the stale limit and the size bound.
        clock: monotonic seconds.
    """

    def __init__(
        self, inner: FastlegeRegister, policy: CachePolicy | None = None, *, clock: Clock = time.monotonic
    ) -> None:
        self._inner = inner
        self._cache: ReadThroughCache[GpAssignment | None] = ReadThroughCache(
            policy or CachePolicy(), clock=clock, register="fastlegeregister"
        )
        self._key = secrets.token_bytes(32)

    def fastlege_for(self, person_id: str) -> GpAssignment | None:
        """Return the person's fastlege and legekontor, or None (cached)."""
        key = hashlib.blake2b(person_id.encode(), key=self._key, digest_size=32).digest()
        return self._cache.get(key, lambda: self._inner.fastlege_for(person_id), describe=None)

    def stats(self) -> CacheStats:
        """The cache's counters, for metrics."""
        return self._cache.stats()

    def clear(self) -> None:
        """Forget every kept answer."""
        self._cache.clear()
