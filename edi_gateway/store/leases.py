"""Leases: which worker runs a job that must run once however many workers there are.

A lease is a row per job name: who holds it and until when. ``acquire_lease`` takes a free or expired
lease, or renews one the caller already holds, with one guarded UPDATE (or the first INSERT): two
workers asking at the same instant cannot both get it. A holder that dies simply stops renewing, and
another worker takes the job over once the lease has expired. ``Store`` inherits this.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from edi_gateway.store.base import StoreBase
from edi_gateway.store.engine import translate_errors
from edi_gateway.store.tables import leases


class LeaseStore(StoreBase):
    """The store's side of leases."""

    def acquire_lease(self, name: str, holder: str, ttl_s: float) -> bool:
        """Take or renew the lease ``name`` for ``holder`` until ``ttl_s`` from now; True when held.

        Raises:
            StoreUnavailable: the database cannot be reached.
        """
        now = self._now()
        until = now + timedelta(seconds=ttl_s)
        with self._write() as conn:
            renewed = conn.execute(
                leases.update()
                .where(leases.c.name == name, sa.or_(leases.c.holder == holder, leases.c.expires_at <= now))
                .values(holder=holder, expires_at=until)
            ).rowcount
            if renewed == 1:
                return True
            taken = conn.execute(sa.select(leases.c.name).where(leases.c.name == name)).first()
            if taken is not None:
                return False
        with translate_errors():
            try:
                with self._transaction() as conn:
                    conn.execute(leases.insert().values(name=name, holder=holder, expires_at=until))
            except sa.exc.IntegrityError:
                return False  # another worker inserted it first
        return True

    def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up now (a clean stop), if ``holder`` holds it.

        Raises:
            StoreUnavailable: the database cannot be reached.
        """
        with self._write() as conn:
            conn.execute(
                leases.update()
                .where(leases.c.name == name, leases.c.holder == holder)
                .values(expires_at=self._now())
            )
