"""Parked AppRecs for operators: views without payloads, audited reveal, resolve or dismiss once."""

from __future__ import annotations

import dataclasses

import pytest

from edi_gateway.services.access import (
    AccessDenied,
    Operator,
    ReasonRequired,
    Role,
    create_operator,
    search_audit,
)
from edi_gateway.services.parked import (
    ParkedAction,
    ParkedAlreadyResolved,
    ParkedNotFound,
    ParkedState,
    decide_parked,
    list_parked,
    reveal_parked,
    show_parked,
)
from edi_gateway.store import NewParked, Store
from edi_gateway.store.rows import PARKED_RAW_KEEP_BYTES
from tests.store.conftest import Builder, FakeClock

PASSWORD = "correct horse battery"
RAW = b"<AppRec><Id>a-1</Id></AppRec>"


def _park(store: Store, *documents: NewParked) -> list[int]:
    store.save_acknowledgements(apprecs=[], parked=documents, transitions=[], health=[], actor="worker:test")
    return [p.id for p in store.list_parked(unresolved_only=False)]


def _account(store: Store, role: Role) -> Operator:
    return create_operator(store, role.value, PASSWORD, role, f"Test {role.value}")


def test_views_carry_ids_sizes_and_codes_but_never_the_document(store: Store, build: Builder) -> None:
    """list and show give kind, code, reason, ids, size and received time; the payload is not in them."""
    document = dataclasses.replace(
        build.parked("apprec.wrong_sender", msg_id="m-1", apprec_id="a-1"), raw=RAW
    )
    (parked_id,) = _park(store, document)
    page = list_parked(store)
    assert (page.total, [v.id for v in page.rows]) == (1, [parked_id])
    view = show_parked(store, parked_id)
    assert view == page.rows[0]
    assert (view.kind, view.code, view.msg_id, view.apprec_id, view.size, view.kept, view.truncated) == (
        "apprec",
        "apprec.wrong_sender",
        "m-1",
        "a-1",
        len(RAW),
        len(RAW),
        False,
    )
    assert view.received_at == document.received_at and view.outcome is None
    assert not any(RAW in str(value).encode() for value in dataclasses.asdict(view).values())


def test_a_cut_document_shows_its_original_size_and_sha256(store: Store, build: Builder) -> None:
    """A document stored cut shows the size it arrived with, how much is kept, and its sha256."""
    huge = b"y" * (PARKED_RAW_KEEP_BYTES * 2)
    (parked_id,) = _park(store, dataclasses.replace(build.parked(), raw=huge))
    view = show_parked(store, parked_id)
    assert (view.size, view.kept, view.truncated) == (len(huge), PARKED_RAW_KEEP_BYTES, True)
    assert view.sha256 is not None and len(view.sha256) == 64


def test_reveal_needs_the_operator_role_and_a_reason_and_is_audited(store: Store, build: Builder) -> None:
    """A viewer or an empty reason is refused; an operator gets the stored bytes and an audit entry."""
    (parked_id,) = _park(store, dataclasses.replace(build.parked("apprec.bad_signature"), raw=RAW))
    viewer, operator = _account(store, Role.VIEWER), _account(store, Role.OPERATOR)
    with pytest.raises(AccessDenied):
        reveal_parked(store, viewer, parked_id, reason="curious")
    with pytest.raises(ReasonRequired):
        reveal_parked(store, operator, parked_id, reason="  ")
    assert search_audit(store, operator="operator") == []

    revealed = reveal_parked(store, operator, parked_id, reason="INC-9 check the signature")
    assert revealed.payload == RAW and revealed.view.id == parked_id
    (entry,) = search_audit(store, operator="operator")
    assert (entry.action, entry.reason, entry.msg_id, entry.patient_ref) == (
        "reveal_parked",
        "INC-9 check the signature",
        None,
        None,
    )
    assert entry.details == {"parked_id": parked_id, "kind": "apprec", "code": "apprec.bad_signature"}


def test_reveal_of_an_apprec_for_one_of_our_messages_is_found_by_its_msg_id(
    store: Store, build: Builder
) -> None:
    """When the parked AppRec names a MsgId we sent, the audit entry names that message."""
    outcome = build.routed()
    store.save_outcomes([outcome], actor="worker:test")
    msg_id = outcome.messages[0].msg_id
    (parked_id,) = _park(store, build.parked("apprec.wrong_sender", msg_id=msg_id.upper()))
    operator = _account(store, Role.OPERATOR)
    reveal_parked(store, operator, parked_id, reason="who sent it")
    assert [e.action for e in search_audit(store, msg_id=msg_id)] == ["reveal_parked"]


def test_resolve_happens_once_and_is_audited(store: Store, build: Builder) -> None:
    """An operator resolves a parked AppRec with a reason; a second resolve or dismiss is refused."""
    (parked_id,) = _park(store, build.parked("apprec.unknown_message"))
    operator = _account(store, Role.OPERATOR)
    resolved = decide_parked(store, operator, parked_id, ParkedAction.RESOLVE, reason="kommune resent it")
    assert (resolved.outcome, resolved.resolved_by, resolved.resolution) == (
        "resolved",
        "operator:operator",
        "resolved: kommune resent it",
    )
    assert resolved.resolved_at is not None
    for action in ParkedAction:
        with pytest.raises(ParkedAlreadyResolved, match=r"was resolved already, by operator:operator"):
            decide_parked(store, operator, parked_id, action, reason="again")
    (entry,) = search_audit(store, operator="operator")
    assert (entry.action, entry.reason) == ("resolve_parked", "kommune resent it")
    assert list_parked(store).total == 0
    assert [v.id for v in list_parked(store, state=ParkedState.HANDLED).rows] == [parked_id]


def test_dismiss_records_its_own_outcome(store: Store, build: Builder) -> None:
    """Dismissing says so in the outcome and in the audit action."""
    (parked_id,) = _park(store, build.parked("apprec.conflict"))
    operator = _account(store, Role.OPERATOR)
    dismissed = decide_parked(store, operator, parked_id, ParkedAction.DISMISS, reason="test system noise")
    assert (dismissed.outcome, dismissed.resolution) == ("dismissed", "dismissed: test system noise")
    assert [e.action for e in search_audit(store, operator="operator")] == ["dismiss_parked"]


def test_resolve_needs_the_operator_role_and_a_reason(store: Store, build: Builder) -> None:
    """A viewer cannot resolve, nor can anyone without a reason; the document stays open."""
    (parked_id,) = _park(store, build.parked())
    viewer, operator = _account(store, Role.VIEWER), _account(store, Role.OPERATOR)
    with pytest.raises(AccessDenied):
        decide_parked(store, viewer, parked_id, ParkedAction.RESOLVE, reason="done")
    with pytest.raises(AccessDenied):
        decide_parked(store, None, parked_id, ParkedAction.DISMISS, reason="done")
    with pytest.raises(ReasonRequired):
        decide_parked(store, operator, parked_id, ParkedAction.RESOLVE, reason="")
    assert show_parked(store, parked_id).outcome is None
    assert search_audit(store) == []


def test_an_unknown_id_is_not_found_everywhere(store: Store) -> None:
    """show, reveal and resolve all refuse an id no parked document has."""
    operator = _account(store, Role.OPERATOR)
    with pytest.raises(ParkedNotFound):
        show_parked(store, 42)
    with pytest.raises(ParkedNotFound):
        reveal_parked(store, operator, 42, reason="look")
    with pytest.raises(ParkedNotFound):
        decide_parked(store, operator, 42, ParkedAction.RESOLVE, reason="done")
    assert search_audit(store) == []


def test_lists_page_newest_first_and_filter_by_code(store: Store, build: Builder, clock: FakeClock) -> None:
    """The list is newest first, pages with limit and offset, filters by code, and refuses a bad page."""
    ids = []
    for code in ("apprec.unknown_message", "apprec.wrong_sender", "apprec.unknown_message"):
        ids += _park(store, build.parked(code))[-1:]
        clock.advance(minutes=1)
    page = list_parked(store, limit=2)
    assert ([v.id for v in page.rows], page.total) == ([ids[2], ids[1]], 3)
    assert [v.id for v in list_parked(store, limit=2, offset=2).rows] == [ids[0]]
    assert [v.id for v in list_parked(store, code="apprec.wrong_sender").rows] == [ids[1]]
    with pytest.raises(ValueError, match="limit"):
        list_parked(store, limit=0)
