"""The simulated receiving system's journal: its own small SQLite file, apart from the gateway's store.

The receiver (``edi-gateway receiver --her HERID``) plays another organisation, so its durable state
lives under ``HOME/receivers/<herId>/`` rather than in the gateway's database. It holds the MsgIds
already answered (per sender, so a forged message can never pre-empt a genuine one: only verified
messages are recorded) and the signed AppRecs waiting to be sent late. The journal survives a
restart, so a late answer still goes out after one.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from edi_gateway.errors import StoreUnavailable
from edi_gateway.private_files import private_dir, private_file


@dataclass(frozen=True, slots=True)
class PendingAppRec:
    """A signed AppRec waiting for its due time.

    Attributes:
        apprec_id: its Id (the AMQP ``message_id``).
        due_at: when to send it (Unix time).
        queue: the original sender's inbox.
        original_msg_id: the MsgId it answers (the AMQP ``correlation_id``).
        recipient_her_id: the original sender's HER-id (a header).
        body: the signed AppRec.
        copies: how many times to publish it (2 with ``duplicate_apprec``).
    """

    apprec_id: str
    due_at: float
    queue: str
    original_msg_id: str
    recipient_her_id: int
    body: bytes
    copies: int = 1


_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS answered (sender_her_id INTEGER NOT NULL, msg_id TEXT NOT NULL, "
    "apprec_id TEXT NOT NULL, answered_at REAL NOT NULL, PRIMARY KEY (sender_her_id, msg_id))",
    "CREATE TABLE IF NOT EXISTS pending (apprec_id TEXT PRIMARY KEY, due_at REAL NOT NULL, "
    "queue TEXT NOT NULL, original_msg_id TEXT NOT NULL, recipient_her_id INTEGER NOT NULL, "
    "body BLOB NOT NULL, copies INTEGER NOT NULL)",
)


class ReceiverJournal:
    """The receiver's durable record: MsgIds answered (per sender) and AppRecs waiting to be sent.

    Every call opens its own SQLite connection, so the consumer and the dispatcher thread can share
    one journal; SQLite serialises the writers.
    """

    def __init__(self, path: Path) -> None:
        """Open (creating when absent) the journal file at ``path``.

        Raises:
            StoreUnavailable: the file cannot be created or read.
        """
        self._path = path
        # Owner-only, like all state under HOME: the journal names the messages this party received.
        try:
            private_dir(path.parent)
            private_file(path)
        except OSError as exc:
            raise StoreUnavailable(f"the receiver journal cannot be created ({exc})") from exc
        with self._connection() as db:
            db.execute("PRAGMA journal_mode=WAL")
            for statement in _SCHEMA:
                db.execute(statement)

    def is_answered(self, sender_her_id: int, msg_id: str) -> bool:
        """Return whether the message ``msg_id`` from ``sender_her_id`` has been answered."""
        with self._connection() as db:
            row = db.execute(
                "SELECT 1 FROM answered WHERE sender_her_id = ? AND msg_id = ?", (sender_her_id, msg_id)
            ).fetchone()
        return row is not None

    def record_answered(self, answered: Sequence[tuple[int, str, str]]) -> None:
        """Record ``(sender_her_id, msg_id, apprec_id)`` triples as answered, in one transaction."""
        if answered:
            with self._connection() as db:
                self._insert_answered(db, answered)

    def schedule(self, pending: Sequence[PendingAppRec], answered: Sequence[tuple[int, str, str]]) -> None:
        """Store AppRecs to send later and record their messages as answered, in one transaction."""
        with self._connection() as db:
            db.executemany(
                "INSERT OR REPLACE INTO pending VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (p.apprec_id, p.due_at, p.queue, p.original_msg_id, p.recipient_her_id, p.body, p.copies)
                    for p in pending
                ],
            )
            self._insert_answered(db, answered)

    def due(self, now: float, *, limit: int = 64) -> list[PendingAppRec]:
        """Return up to ``limit`` AppRecs due at ``now``, oldest due first."""
        with self._connection() as db:
            rows = db.execute(
                "SELECT apprec_id, due_at, queue, original_msg_id, recipient_her_id, body, copies "
                "FROM pending WHERE due_at <= ? ORDER BY due_at LIMIT ?",
                (now, limit),
            ).fetchall()
        return [PendingAppRec(r[0], r[1], r[2], r[3], r[4], bytes(r[5]), r[6]) for r in rows]

    def pending_count(self) -> int:
        """Return how many AppRecs wait to be sent."""
        with self._connection() as db:
            (count,) = db.execute("SELECT count(*) FROM pending").fetchone()
        return int(count)

    def remove(self, apprec_ids: Sequence[str]) -> None:
        """Forget pending AppRecs that went out."""
        if apprec_ids:
            with self._connection() as db:
                db.executemany("DELETE FROM pending WHERE apprec_id = ?", [(i,) for i in apprec_ids])

    @staticmethod
    def _insert_answered(db: sqlite3.Connection, answered: Sequence[tuple[int, str, str]]) -> None:
        now = time.time()
        db.executemany(
            "INSERT OR IGNORE INTO answered VALUES (?, ?, ?, ?)", [(s, m, a, now) for s, m, a in answered]
        )

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        """A connection for one transaction: committed on success, rolled back on error, then closed."""
        try:
            with closing(sqlite3.connect(self._path, timeout=10)) as db, db:
                yield db
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"the receiver journal cannot be used ({type(exc).__name__})") from exc
