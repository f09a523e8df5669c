"""The register caches: read-through, TTLs, LRU bound, stale answers while a register is down, threads."""

from __future__ import annotations

import datetime as dt
import io
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edi_gateway.domain.model import Organisation, Practitioner
from edi_gateway.errors import RegisterRefused, RegisterUnavailable
from edi_gateway.logging import configure_logging
from edi_gateway.registers.base import GpAssignment, Virksomhet
from edi_gateway.registers.cache import CachedAddressRegister, CachedFastlegeRegister, CachePolicy

PERSON = "18897219545"


class FakeClock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _virksomhet(her_id: int, name: str = "Porsgrunn kommune") -> Virksomhet:
    return Virksomhet(Organisation(her_id, name, "960267737"), "kommune", "4001", f"{her_id}_async")


class FakeAddress:
    """An AddressRegister whose answers and failures a test sets; counts every question."""

    def __init__(self) -> None:
        self.answers: dict[int, Virksomhet | None] = {8100005: _virksomhet(8100005)}
        self.failure: Exception | None = None
        self.calls: list[tuple[str, object]] = []
        self.gate: threading.Event | None = None
        self.pem: bytes | None = None
        self._lock = threading.Lock()

    def _ask(self, question: str, key: object) -> None:
        with self._lock:
            self.calls.append((question, key))
        if self.gate is not None:
            self.gate.wait(5)
        if self.failure is not None:
            raise self.failure

    def kommune(self, kommunenummer: str) -> Virksomhet | None:
        self._ask("kommune", kommunenummer)
        return self.answers.get(8100005) if kommunenummer == "4001" else None

    def virksomhet(self, her_id: int) -> Virksomhet | None:
        self._ask("virksomhet", her_id)
        return self.answers.get(her_id)

    def parent_of(self, her_id: int) -> Virksomhet | None:
        self._ask("parent_of", her_id)
        return self.answers.get(her_id)

    def certificate_pem(self, her_id: int) -> bytes | None:
        self._ask("certificate_pem", her_id)
        return self.pem

    def all_virksomheter(self) -> tuple[Virksomhet, ...]:
        self._ask("all_virksomheter", None)
        return tuple(v for v in self.answers.values() if v is not None)


class FakeFastlege:
    """A FastlegeRegister with one GP assignment; fails when a test says so."""

    def __init__(self) -> None:
        legekontor = _virksomhet(8100091, "Porsgrunn legesenter 3")
        self.answer = GpAssignment(Practitioner(8100092, "Arne", "Bakke", "7519653"), legekontor)
        self.failure: Exception | None = None
        self.calls = 0

    def fastlege_for(self, person_id: str) -> GpAssignment | None:
        self.calls += 1
        if self.failure is not None:
            raise self.failure
        return self.answer if person_id == PERSON else None


POLICY = CachePolicy(ttl_s=60, negative_ttl_s=10, stale_max_s=600, max_entries=100)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def inner() -> FakeAddress:
    return FakeAddress()


@pytest.fixture
def cached(inner: FakeAddress, clock: FakeClock) -> CachedAddressRegister:
    return CachedAddressRegister(inner, POLICY, clock=clock)


@pytest.fixture
def log_lines() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The JSON log lines written during the test, as a callable returning them parsed."""
    buffer = io.StringIO()
    configure_logging(stream=buffer, json=True, level="DEBUG")
    try:
        yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]
    finally:
        configure_logging()


def test_a_fresh_answer_comes_from_the_cache(cached: CachedAddressRegister, inner: FakeAddress) -> None:
    """Within the TTL the same question is answered without asking the register again."""
    first = cached.virksomhet(8100005)
    second = cached.virksomhet(8100005)
    assert first is second and first is not None
    assert inner.calls == [("virksomhet", 8100005)]
    stats = cached.stats()
    assert (stats.hits, stats.misses, stats.stale_served, stats.errors) == (1, 1, 0, 0)


def test_each_question_is_cached_on_its_own(cached: CachedAddressRegister, inner: FakeAddress) -> None:
    """virksomhet, parent_of, kommune and all_virksomheter for the same id are separate cache entries."""
    cached.virksomhet(8100005)
    cached.parent_of(8100005)
    cached.kommune("4001")
    cached.all_virksomheter()
    cached.all_virksomheter()
    assert [q for q, _ in inner.calls] == ["virksomhet", "parent_of", "kommune", "all_virksomheter"]


def test_an_answer_is_asked_again_after_its_ttl(
    cached: CachedAddressRegister, inner: FakeAddress, clock: FakeClock
) -> None:
    """After ttl_s the register is asked again and its new answer is served."""
    cached.virksomhet(8100005)
    clock.advance(59)
    cached.virksomhet(8100005)
    assert len(inner.calls) == 1
    inner.answers[8100005] = _virksomhet(8100005, "Porsgrunn kommune (renamed)")
    clock.advance(2)
    found = cached.virksomhet(8100005)
    assert found is not None and found.organisation.name == "Porsgrunn kommune (renamed)"
    assert len(inner.calls) == 2


def test_a_negative_answer_expires_sooner(
    cached: CachedAddressRegister, inner: FakeAddress, clock: FakeClock
) -> None:
    """A None answer is kept for negative_ttl_s only, while a found answer is still fresh."""
    assert cached.virksomhet(999) is None
    cached.virksomhet(8100005)
    clock.advance(9)
    assert cached.virksomhet(999) is None
    assert len(inner.calls) == 2
    clock.advance(2)
    inner.answers[999] = _virksomhet(999)
    assert cached.virksomhet(999) is not None
    cached.virksomhet(8100005)
    assert inner.calls == [("virksomhet", 999), ("virksomhet", 8100005), ("virksomhet", 999)]


def test_the_least_recently_used_answer_is_dropped_at_the_bound(inner: FakeAddress, clock: FakeClock) -> None:
    """With max_entries=2, asking a third question drops the answer used longest ago."""
    cached = CachedAddressRegister(inner, CachePolicy(ttl_s=60, max_entries=2), clock=clock)
    for her_id in (1, 2):
        inner.answers[her_id] = _virksomhet(her_id)
        cached.virksomhet(her_id)
    cached.virksomhet(1)  # 1 is now the most recently used
    inner.answers[3] = _virksomhet(3)
    cached.virksomhet(3)
    assert cached.stats().entries == 2
    inner.calls.clear()
    cached.virksomhet(1)
    assert inner.calls == []
    cached.virksomhet(2)
    assert inner.calls == [("virksomhet", 2)]


def test_a_stale_answer_is_served_while_the_register_is_unavailable(
    cached: CachedAddressRegister,
    inner: FakeAddress,
    clock: FakeClock,
    log_lines: Callable[[], list[dict[str, Any]]],
) -> None:
    """Past its TTL but within stale_max_s, an answer is served when the register raises RegisterUnavailable."""
    before = cached.parent_of(8100005)
    clock.advance(120)
    inner.failure = RegisterUnavailable("AR is down")
    assert cached.parent_of(8100005) == before
    stats = cached.stats()
    assert (stats.stale_served, stats.errors) == (1, 1)
    (warning,) = [line for line in log_lines() if "stale" in line["event"]]
    assert warning["her_id"] == 8100005
    assert warning["register"] == "adresseregister"
    assert "Porsgrunn" not in json.dumps(warning)


def test_the_stale_warning_for_a_kommune_names_the_kommunenummer(
    cached: CachedAddressRegister,
    inner: FakeAddress,
    clock: FakeClock,
    log_lines: Callable[[], list[dict[str, Any]]],
) -> None:
    """A stale kommune answer is logged with its kommunenummer."""
    cached.kommune("4001")
    clock.advance(61)
    inner.failure = RegisterUnavailable("down")
    assert cached.kommune("4001") is not None
    (warning,) = [line for line in log_lines() if "stale" in line["event"]]
    assert warning["kommunenummer"] == "4001"


def test_a_stale_answer_too_old_is_not_served(
    cached: CachedAddressRegister, inner: FakeAddress, clock: FakeClock
) -> None:
    """Once an answer is stale_max_s old, a register fault is raised instead."""
    cached.virksomhet(8100005)
    clock.advance(600)
    inner.failure = RegisterUnavailable("down")
    with pytest.raises(RegisterUnavailable):
        cached.virksomhet(8100005)
    assert cached.stats().stale_served == 0


def test_without_any_answer_the_fault_is_raised(cached: CachedAddressRegister, inner: FakeAddress) -> None:
    """A register fault on a question never answered before reaches the caller and is counted."""
    inner.failure = RegisterUnavailable("down")
    with pytest.raises(RegisterUnavailable):
        cached.certificate_pem(8100005)
    assert cached.stats().errors == 1
    inner.failure = None
    assert cached.certificate_pem(8100005) is None
    assert len(inner.calls) == 2


def test_a_refusal_is_raised_not_cached_and_not_covered_by_a_stale_answer(
    cached: CachedAddressRegister, inner: FakeAddress, clock: FakeClock
) -> None:
    """RegisterRefused passes through even with a stale answer at hand, and nothing is stored for it."""
    cached.virksomhet(8100005)
    clock.advance(61)
    inner.failure = RegisterRefused("bad question")
    with pytest.raises(RegisterRefused):
        cached.virksomhet(8100005)
    with pytest.raises(RegisterRefused):
        cached.virksomhet(8100005)
    assert len(inner.calls) == 3
    assert cached.stats().stale_served == 0


def test_stale_answers_can_be_turned_off(inner: FakeAddress, clock: FakeClock) -> None:
    """With stale_max_s=0 every register fault after the TTL is raised."""
    cached = CachedAddressRegister(inner, CachePolicy(ttl_s=60, stale_max_s=0), clock=clock)
    cached.virksomhet(8100005)
    clock.advance(61)
    inner.failure = RegisterUnavailable("down")
    with pytest.raises(RegisterUnavailable):
        cached.virksomhet(8100005)


def test_clear_forgets_every_answer(cached: CachedAddressRegister, inner: FakeAddress) -> None:
    """After clear() the next question goes to the register again."""
    cached.virksomhet(8100005)
    cached.clear()
    cached.virksomhet(8100005)
    assert len(inner.calls) == 2


def test_certificate_expiry_is_read_from_the_cached_certificate(
    cached: CachedAddressRegister, inner: FakeAddress
) -> None:
    """certificate_not_after answers the certificate's notAfter without asking the register a second time."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    not_after = dt.datetime(2031, 5, 17, 12, 0, tzinfo=dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(dt.datetime(2024, 1, 1, tzinfo=dt.UTC))
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    inner.pem = certificate.public_bytes(serialization.Encoding.PEM)
    assert cached.certificate_pem(8100005) == inner.pem
    assert cached.certificate_not_after(8100005) == not_after
    assert inner.calls == [("certificate_pem", 8100005)]
    inner.pem = None
    assert cached.certificate_not_after(999) is None


def test_concurrent_askers_of_one_question_share_one_register_call(
    cached: CachedAddressRegister, inner: FakeAddress
) -> None:
    """Sixteen threads asking the same question while it is being asked cause one register call."""
    inner.gate = threading.Event()
    results: list[Virksomhet | None] = []
    lock = threading.Lock()

    def ask() -> None:
        found = cached.virksomhet(8100005)
        with lock:
            results.append(found)

    threads = [threading.Thread(target=ask) for _ in range(16)]
    for thread in threads:
        thread.start()
    while not inner.calls:
        threading.Event().wait(0.001)
    threading.Event().wait(0.05)  # let the others reach the cache while the first is still asking
    inner.gate.set()
    for thread in threads:
        thread.join(5)
    assert len(results) == 16 and all(r is results[0] and r is not None for r in results)
    assert inner.calls == [("virksomhet", 8100005)]


def test_waiting_askers_get_the_fault_of_the_call_they_waited_for(
    cached: CachedAddressRegister, inner: FakeAddress
) -> None:
    """When the shared call fails and nothing stale exists, every waiting thread gets RegisterUnavailable."""
    inner.gate = threading.Event()
    inner.failure = RegisterUnavailable("down")
    outcomes: list[str] = []
    lock = threading.Lock()

    def ask() -> None:
        try:
            cached.virksomhet(8100005)
            outcome = "answer"
        except RegisterUnavailable:
            outcome = "unavailable"
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    while not inner.calls:
        threading.Event().wait(0.001)
    threading.Event().wait(0.05)
    inner.gate.set()
    for thread in threads:
        thread.join(5)
    assert outcomes == ["unavailable"] * 8
    assert len(inner.calls) < 8


def test_many_threads_on_many_questions_keep_the_cache_consistent(
    inner: FakeAddress, clock: FakeClock
) -> None:
    """Under concurrent use with a small bound, answers stay right, the size bound holds, counters add up."""
    for her_id in range(1, 41):
        inner.answers[her_id] = _virksomhet(her_id)
    cached = CachedAddressRegister(inner, CachePolicy(ttl_s=60, max_entries=8), clock=clock)
    errors: list[str] = []

    def work(offset: int) -> None:
        for n in range(400):
            her_id = (n * 7 + offset) % 40 + 1
            found = cached.virksomhet(her_id)
            if found is None or found.her_id != her_id:
                errors.append(f"{her_id} -> {found}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    stats = cached.stats()
    assert errors == []
    assert stats.entries <= 8
    assert stats.hits + stats.misses == 8 * 400
    assert len(inner.calls) <= stats.misses


def test_a_fastlege_answer_is_cached_and_served_stale_without_logging_the_person(
    clock: FakeClock, log_lines: Callable[[], list[dict[str, Any]]]
) -> None:
    """The Fastlegeregister cache answers from its keep, and its stale warning names no person or GP."""
    inner = FakeFastlege()
    cached = CachedFastlegeRegister(inner, POLICY, clock=clock)
    assert cached.fastlege_for(PERSON) == inner.answer
    assert cached.fastlege_for(PERSON) == inner.answer
    assert inner.calls == 1
    clock.advance(61)
    inner.failure = RegisterUnavailable("FLR is down")
    assert cached.fastlege_for(PERSON) == inner.answer
    assert cached.stats().stale_served == 1
    lines = log_lines()
    (warning,) = [line for line in lines if "stale" in line["event"]]
    assert warning["register"] == "fastlegeregister"
    assert set(warning) <= {"event", "register", "age_s", "error", "level", "logger", "timestamp"}
    text = json.dumps(lines)
    assert PERSON not in text and "Bakke" not in text and "8100092" not in text


def test_a_negative_fastlege_answer_expires_after_the_negative_ttl(clock: FakeClock) -> None:
    """A person without a fastlege is asked again after negative_ttl_s, a found one is not."""
    inner = FakeFastlege()
    cached = CachedFastlegeRegister(inner, POLICY, clock=clock)
    other = "23915700969"
    assert cached.fastlege_for(other) is None
    cached.fastlege_for(PERSON)
    clock.advance(11)
    cached.fastlege_for(other)
    cached.fastlege_for(PERSON)
    assert inner.calls == 3


def test_the_fastlege_cache_holds_no_person_number() -> None:
    """The Fastlegeregister cache keys are keyed hashes: the person number is not among what it keeps."""
    cached = CachedFastlegeRegister(FakeFastlege(), POLICY)
    cached.fastlege_for(PERSON)
    keys = list(cached._cache._entries)  # the keep itself: nothing else shows what it holds
    assert len(keys) == 1
    assert isinstance(keys[0], bytes) and PERSON.encode() not in keys[0]


def test_the_policy_refuses_values_that_cannot_work() -> None:
    """A zero TTL or size is refused when the policy is made."""
    with pytest.raises(ValueError):
        CachePolicy(ttl_s=0)
    with pytest.raises(ValueError):
        CachePolicy(max_entries=0)
