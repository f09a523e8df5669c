"""The pathway store on SQLite and PostgreSQL: guarded versions, append-only history, points in step."""

from __future__ import annotations

import hashlib
import threading
import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from edi_gateway.domain.pathway import (
    Assignee,
    Pathway,
    PathwayMessage,
    PointState,
    assign,
    continue_pathway,
    mark,
    open_from_message,
    tick,
)
from edi_gateway.domain.pathway.document import EventKind, event_rows, from_document, point_rows, to_document
from edi_gateway.services.pathway_models import shipped_model
from edi_gateway.store import Store
from edi_gateway.store.operators import NewAuditEntry
from edi_gateway.store.pathways import (
    AlertKey,
    NewPathwayNote,
    PathwayChange,
    PathwayChanged,
    PathwayOpening,
    ReceivedNotPending,
    ReceivedState,
    StoredPathway,
)
from edi_gateway.store.tables import (
    audit_log,
    pathway_events,
    pathway_notes,
    pathway_points,
    received_messages,
)

OSLO = ZoneInfo("Europe/Oslo")
TELEMARK = shipped_model("telemark")
KOMMUNE, SERVICE, HOSPITAL = 8100005, 8100007, 8100001
DIAGNOSIS = date(2026, 1, 12)


def noon(day: date) -> datetime:
    """Noon Norwegian time on ``day``."""
    return datetime.combine(day, time(12), OSLO)


def patient_ref(name: str = "a") -> str:
    """A synthetic keyed patient hash."""
    return hashlib.sha256(f"patient {name}".encode()).hexdigest()


def add_received(
    database_url: str,
    *,
    body: bytes = b"<MsgHead/>",
    patient: str | None = "a",
    received_at: datetime | None = None,
    receiver_her_id: int = KOMMUNE,
    state: str | None = "pending",
    msg_id: str | None = None,
) -> tuple[int, str]:
    """Insert a received_messages row as the receiving side stores one; return its id and MsgId."""
    msg_id = msg_id or str(uuid.uuid4())
    values: dict[str, Any] = {
        "msg_id": msg_id,
        "sender_her_id": HOSPITAL,
        "receiver_her_id": receiver_her_id,
        "addressed_her_id": SERVICE,
        "msg_type": "DIALOG_HELSEFAGLIG",
        "received_at": received_at or noon(date(2026, 1, 20)),
        "body": body,
        "patient_ref": patient_ref(patient) if patient is not None else None,
        "patient_masked": "010180*****" if patient is not None else None,
        "apprec_id": str(uuid.uuid4()),
        "apprec_status": 1,
        "apprec_errors": [],
        "apprec_body": b"<AppRec/>",
        "pathway_state": state,
    }
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as conn:
            new_id = conn.execute(
                received_messages.insert().returning(received_messages.c.id), [values]
            ).scalar_one()
    finally:
        engine.dispose()
    return int(new_id), msg_id


def table_rows(database_url: str, table: sa.Table, *order: str) -> list[dict[str, Any]]:
    """Every row of ``table`` as dicts, in ``order``."""
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            query = sa.select(table).order_by(*(table.c[o] for o in order))
            return [dict(r) for r in conn.execute(query).mappings()]
    finally:
        engine.dispose()


def first_message(
    msg_id: str = "m-1", *, diagnosis: date = DIAGNOSIS, relapse: bool = False
) -> PathwayMessage:
    """A behovskartlegging of samhandlingspunkt 1, assessed a week after the diagnosis."""
    assessed = diagnosis + timedelta(days=7)
    return PathwayMessage(1, diagnosis, relapse, assessed, noon(assessed), msg_id)


def opened(ref: str = patient_ref()) -> Pathway:
    """A pathway opened from a first message."""
    return open_from_message(TELEMARK, first_message(), patient_ref=ref, actor="worker:test")


def opening(pathway: Pathway, *, received: int | None = None, msg_id: str = "m-1") -> PathwayChange:
    """The store change opening ``pathway``."""
    return PathwayChange(
        at=noon(date(2026, 1, 20)),
        document=to_document(pathway),
        points=point_rows(pathway),
        events=event_rows(pathway.history, course=0),
        assigned_to=None,
        opening=PathwayOpening(pathway.patient_ref, "010180*****", KOMMUNE, "4001", pathway.model_name),
        source_msg_id=msg_id,
        received=None if received is None else (received, ReceivedState.APPLIED),
    )


def change_of(stored: StoredPathway, after: Pathway, at: datetime, **extra: Any) -> PathwayChange:
    """The store change from the stored pathway (loaded without history) to ``after``."""
    before = from_document(stored.document)
    return PathwayChange(
        at=at,
        document=to_document(after),
        points=point_rows(after),
        events=event_rows(after.history[len(before.history) :], course=before.current.number),
        assigned_to=None if after.assigned_to is None else str(after.assigned_to),
        pathway_id=stored.id,
        expected_version=stored.version,
        **extra,
    )


def saved_pathway(store: Store) -> StoredPathway:
    """Open the default pathway in the store and return it as stored."""
    saved = store.save_pathway(opening(opened()))
    stored = store.get_pathway(saved.id)
    assert stored is not None
    return stored


def test_opening_writes_the_pathway_its_points_history_and_the_received_state(
    store: Store, database_url: str
) -> None:
    """One save opens the row at version 1, its three points, its history, and marks the message applied."""
    received, msg_id = add_received(database_url)
    pathway = opened()
    saved = store.save_pathway(opening(pathway, received=received, msg_id=msg_id))
    stored = store.get_pathway(saved.id)
    assert stored is not None and (stored.version, stored.source_msg_id, stored.kommunenummer) == (
        1,
        msg_id,
        "4001",
    )
    assert store.pathway_for_patient(pathway.patient_ref) == stored
    assert from_document(stored.document) == pathway.__class__(
        pathway.patient_ref, "telemark", pathway.courses
    )
    assert [(r["number"], r["state"]) for r in table_rows(database_url, pathway_points, "number")] == [
        (1, "done"),
        (2, "planned"),
        (3, "planned"),
    ]
    assert len(store.pathway_events_of(saved.id)) == len(pathway.history)
    assert [r["pathway_state"] for r in table_rows(database_url, received_messages, "id")] == ["applied"]
    assert store.pending_received() == []


def test_a_stale_version_loses_and_writes_nothing(store: Store, database_url: str) -> None:
    """Two changes made on version 1: the first wins, the second raises PathwayChanged and writes nothing."""
    stored = saved_pathway(store)
    pathway = from_document(stored.document)
    at = noon(date(2026, 4, 20))
    received, _ = add_received(database_url)
    first = change_of(
        stored, mark(pathway, 2, PointState.DONE, at=at, actor="operator:ola", reason="besøk"), at
    )
    second = change_of(
        stored,
        mark(pathway, 2, PointState.DECLINED, at=at, actor="operator:kari", reason="nei"),
        at,
        notes=[NewPathwayNote(1, 2, "operator:kari", "notat")],
        received=(received, ReceivedState.APPLIED),
    )
    assert store.save_pathway(first).version == 2
    events_before = table_rows(database_url, pathway_events, "id")
    with pytest.raises(PathwayChanged):
        store.save_pathway(second)
    after = store.get_pathway(stored.id)
    assert after is not None and after.version == 2
    assert table_rows(database_url, pathway_events, "id") == events_before
    assert [r["state"] for r in table_rows(database_url, pathway_points, "number")][1] == "done"
    assert table_rows(database_url, pathway_notes, "id") == []
    assert [r["pathway_state"] for r in table_rows(database_url, received_messages, "id")] == ["pending"]


def test_a_second_opening_for_the_same_patient_loses(store: Store) -> None:
    """Two workers opening a pathway for one patient: the second gets PathwayChanged."""
    store.save_pathway(opening(opened()))
    with pytest.raises(PathwayChanged):
        store.save_pathway(opening(opened()))


def test_racing_writers_each_land_once_in_version_order(store: Store, database_url: str) -> None:
    """Threads reassigning one pathway with reload-and-retry: every change lands, none is lost."""
    stored = saved_pathway(store)
    per_thread, threads = 5, 4
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            for i in range(per_thread):
                while True:
                    current = store.get_pathway(stored.id)
                    assert current is not None
                    at = noon(date(2026, 2, 1))
                    after = assign(
                        from_document(current.document),
                        Assignee.operator(f"{name}-{i}"),
                        at=at,
                        actor=f"operator:{name}",
                        reason="vakt",
                    )
                    try:
                        store.save_pathway(change_of(current, after, at))
                        break
                    except PathwayChanged:
                        continue
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    workers = [threading.Thread(target=writer, args=(f"w{n}",)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert errors == []
    final = store.get_pathway(stored.id)
    assert final is not None and final.version == 1 + per_thread * threads
    assigned = [e for e in store.pathway_events_of(stored.id) if e.kind is EventKind.ASSIGNED]
    assert len(assigned) == per_thread * threads


def test_history_is_appended_never_rewritten(store: Store, database_url: str) -> None:
    """Later changes add rows after the earlier ones and leave every earlier row exactly as it was."""
    stored = saved_pathway(store)
    first_rows = table_rows(database_url, pathway_events, "id")
    at = noon(date(2026, 4, 20))
    store.save_pathway(change_of(stored, tick(from_document(stored.document), at), at))
    again = store.get_pathway(stored.id)
    assert again is not None
    after = mark(
        from_document(again.document), 2, PointState.DONE, at=at, actor="operator:ola", reason="besøk"
    )
    store.save_pathway(change_of(again, after, at))
    rows = table_rows(database_url, pathway_events, "id")
    assert rows[: len(first_rows)] == first_rows
    added = rows[len(first_rows) :]
    assert [(r["kind"], r["from_state"], r["to_state"], r["actor"]) for r in added] == [
        ("point", "planned", "due", "clock"),
        ("point", "due", "done", "operator:ola"),
    ]
    assert min(r["id"] for r in added) > max(r["id"] for r in first_rows)


def test_points_stay_in_step_and_keep_the_time_of_their_last_move(store: Store, database_url: str) -> None:
    """Rewritten points match the document; a point not moved keeps its changed_at, a moved one gets its move's time."""
    stored = saved_pathway(store)
    opened_rows = {r["number"]: r for r in table_rows(database_url, pathway_points, "number")}
    at = noon(date(2026, 4, 20))
    store.save_pathway(change_of(stored, tick(from_document(stored.document), at), at))
    rows = {r["number"]: r for r in table_rows(database_url, pathway_points, "number")}
    assert rows[1]["changed_at"] == opened_rows[1]["changed_at"]
    assert rows[3]["changed_at"] == opened_rows[3]["changed_at"]
    assert (rows[2]["state"], rows[2]["changed_at"]) == ("due", at.astimezone(UTC))
    current = store.get_pathway(stored.id)
    assert current is not None
    expected = point_rows(from_document(current.document))
    assert [(r.course, r.number, r.state, r.due_from, r.due_to) for r in expected] == [
        (r["course"], r["number"], r["state"], r["due_from"], r["due_to"]) for r in rows.values()
    ]


def test_a_message_already_taken_in_writes_nothing(store: Store, database_url: str) -> None:
    """A change naming a received message no longer pending raises ReceivedNotPending; the version stays."""
    received, _ = add_received(database_url, state="applied")
    stored = saved_pathway(store)
    at = noon(date(2026, 4, 20))
    change = change_of(
        stored, tick(from_document(stored.document), at), at, received=(received, ReceivedState.APPLIED)
    )
    with pytest.raises(ReceivedNotPending):
        store.save_pathway(change)
    current = store.get_pathway(stored.id)
    assert current is not None and current.version == 1
    assert store.set_received_state(received, ReceivedState.IGNORED) is False


def test_notes_alerts_and_audit_go_with_the_change(store: Store, database_url: str) -> None:
    """A done with a note writes the pending note, its alert once and the audit entry in the same save."""
    stored = saved_pathway(store)
    at = noon(date(2026, 4, 20))
    after = mark(
        from_document(stored.document), 2, PointState.DONE, at=at, actor="operator:ola", reason="besøk"
    )
    audit = NewAuditEntry(
        "ola", "pathway_mark", "besøk", patient_ref=stored.patient_ref, details={"pathway_id": stored.id}
    )
    change = change_of(
        stored,
        after,
        at,
        notes=[NewPathwayNote(1, 2, "operator:ola", "Samtale gjennomført.")],
        alerts=[AlertKey(0, 1, 2, "conflict")],
        audit=audit,
    )
    store.save_pathway(change)
    notes = store.pathway_notes_of(stored.id)
    assert [(n.course, n.number, n.state, n.text, n.asked_by) for n in notes] == [
        (1, 2, "pending", "Samtale gjennomført.", "operator:ola")
    ]
    assert store.raise_pathway_alerts([AlertKey(stored.id, 1, 2, "conflict")], at=at) == []
    logged = table_rows(database_url, audit_log, "id")
    assert [(r["username"], r["action"], r["patient_ref"]) for r in logged] == [
        ("ola", "pathway_mark", stored.patient_ref)
    ]


def test_each_alert_is_raised_once(store: Store) -> None:
    """Raising the same alerts again returns none; a new kind or course is new."""
    stored = saved_pathway(store)
    at = noon(date(2026, 4, 20))
    keys = [AlertKey(stored.id, 1, 2, "due_soon"), AlertKey(stored.id, 1, 3, "due_soon")]
    assert store.raise_pathway_alerts(keys, at=at) == keys
    assert store.raise_pathway_alerts(keys, at=at) == []
    later = [AlertKey(stored.id, 1, 2, "overdue"), AlertKey(stored.id, 2, 2, "due_soon"), keys[0]]
    assert store.raise_pathway_alerts(later, at=at) == later[:2]


def test_the_worklist_shows_current_courses_with_filters(store: Store, database_url: str) -> None:
    """Only the current course's points are listed, filtered by state, assignee and window start."""
    stored = saved_pathway(store)
    other = store.save_pathway(opening(opened(patient_ref("b")), msg_id="m-2"))
    at = noon(date(2026, 9, 20))
    relapse = first_message("m-3", diagnosis=date(2026, 9, 1), relapse=True)
    restarted = assign(
        continue_pathway(from_document(stored.document), relapse, actor="worker:test"),
        Assignee.role("kreftkoordinator"),
        at=at,
        actor="operator:ola",
        reason="ny",
    )
    store.save_pathway(change_of(stored, restarted, at, source_msg_id="m-3"))
    rows = store.pathway_worklist(pathway_id=stored.id)
    assert [(r.course, r.number, r.state, r.source_msg_id) for r in rows] == [
        (2, 1, "done", "m-3"),
        (2, 2, "planned", "m-3"),
        (2, 3, "planned", "m-3"),
    ]
    assert len(table_rows(database_url, pathway_points, "pathway_id", "course", "number")) == 9
    assigned = store.pathway_worklist(assigned_to="role:kreftkoordinator")
    assert {r.pathway_id for r in assigned} == {stored.id}
    assert {r.pathway_id for r in store.pathway_worklist(state="planned")} == {stored.id, other.id}
    early = store.pathway_worklist(due_before=date(2026, 5, 1))
    assert {(r.pathway_id, r.number) for r in early} == {(other.id, 1), (other.id, 2)}


def test_point_counts_follow_the_calendar(store: Store) -> None:
    """Counts judge the stored open points by the day asked: overdue, due (window open), due soon."""
    store.save_pathway(opening(opened()))
    store.save_pathway(opening(opened(patient_ref("b")), msg_id="m-2"))
    counts = store.pathway_point_counts(
        today=date(2026, 4, 1), due_soon_until=date(2026, 4, 15), performer="kommune"
    )
    assert counts == {"overdue": 0, "due": 0, "due_soon": 2}
    counts = store.pathway_point_counts(
        today=date(2026, 4, 20), due_soon_until=date(2026, 5, 4), performer="kommune"
    )
    assert counts == {"overdue": 0, "due": 2, "due_soon": 0}
    counts = store.pathway_point_counts(
        today=date(2026, 5, 13), due_soon_until=date(2026, 5, 27), performer="kommune"
    )
    assert counts == {"overdue": 2, "due": 0, "due_soon": 0}
    assert store.pathway_point_counts(
        today=date(2026, 5, 13), due_soon_until=date(2026, 5, 27), performer="sykehus"
    ) == {
        "overdue": 0,
        "due": 0,
        "due_soon": 0,
    }


def test_pending_received_lists_pending_rows_oldest_first(store: Store, database_url: str) -> None:
    """Only pending rows are listed, oldest first, up to the limit; the body comes along."""
    late, _ = add_received(database_url, received_at=noon(date(2026, 1, 21)), body=b"<late/>")
    early, _ = add_received(database_url, received_at=noon(date(2026, 1, 20)), body=b"<early/>")
    add_received(database_url, state="applied")
    add_received(database_url, state=None)
    assert [(r.id, r.body) for r in store.pending_received()] == [(early, b"<early/>"), (late, b"<late/>")]
    assert [r.id for r in store.pending_received(limit=1)] == [early]
    assert store.set_received_state(early, ReceivedState.IGNORED) is True
    assert [r.id for r in store.pending_received()] == [late]
    assert [s.pathway_state for s in store.received_for_patient(patient_ref())] == [
        "ignored",
        "applied",
        "pending",
    ]


def test_pathways_with_open_points_page_by_id(store: Store) -> None:
    """Pathways with an open point are listed by id after the one given."""
    ids = [store.save_pathway(opening(opened(patient_ref(n)), msg_id=n)).id for n in "abc"]
    assert [p.id for p in store.pathways_with_open_points(limit=2)] == ids[:2]
    assert [p.id for p in store.pathways_with_open_points(after_id=ids[1])] == ids[2:]
