"""Leases on SQLite and PostgreSQL: one holder at a time, renewal, expiry, release, and a race to take one."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from edi_gateway.services.leasing import run_with_lease
from edi_gateway.store import Store
from tests.store.conftest import FakeClock


def test_a_lease_has_one_holder_until_it_expires(store: Store, clock: FakeClock) -> None:
    """While worker A holds the lease, B cannot take it; A renews it; once expired, B takes it over."""
    assert store.acquire_lease("overdue_sweep", "worker:a", 30)
    assert not store.acquire_lease("overdue_sweep", "worker:b", 30)
    clock.advance(seconds=20)
    assert store.acquire_lease("overdue_sweep", "worker:a", 30)  # renewed until now + 30
    clock.advance(seconds=20)
    assert not store.acquire_lease("overdue_sweep", "worker:b", 30)
    clock.advance(seconds=11)
    assert store.acquire_lease("overdue_sweep", "worker:b", 30)
    assert not store.acquire_lease("overdue_sweep", "worker:a", 30)


def test_a_released_lease_is_free_at_once_and_leases_are_per_job(store: Store, clock: FakeClock) -> None:
    """Releasing hands the job over without waiting; another job's lease is independent."""
    assert store.acquire_lease("overdue_sweep", "worker:a", 30)
    assert store.acquire_lease("nhn_delivery_status", "worker:b", 30)
    store.release_lease("overdue_sweep", "worker:b")  # not b's to release: nothing happens
    assert not store.acquire_lease("overdue_sweep", "worker:b", 30)
    store.release_lease("overdue_sweep", "worker:a")
    assert store.acquire_lease("overdue_sweep", "worker:b", 30)


def test_of_many_workers_asking_at_once_exactly_one_gets_the_lease(store: Store) -> None:
    """Eight workers asking for a new lease at the same moment: one holder, seven refusals."""
    barrier = threading.Barrier(8)

    def ask(n: int) -> bool:
        barrier.wait()
        return store.acquire_lease("overdue_sweep", f"worker:{n}", 30)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(ask, range(8)))
    assert results.count(True) == 1


def test_only_the_lease_holder_runs_the_periodic_job(store: Store) -> None:
    """Two loops on one job: the job runs in one of them only, and the lease is released when it stops."""
    runs: dict[str, int] = {"worker:a": 0, "worker:b": 0}
    stop = threading.Event()

    def loop(holder: str) -> None:
        def job() -> None:
            runs[holder] += 1
            if sum(runs.values()) >= 5:
                stop.set()

        run_with_lease(store, "overdue_sweep", holder, 0.02, job, stop)

    threads = [threading.Thread(target=loop, args=(h,)) for h in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(runs.values())[0] == 0 and sum(runs.values()) >= 5
    assert store.acquire_lease("overdue_sweep", "worker:c", 30)  # released on the way out
