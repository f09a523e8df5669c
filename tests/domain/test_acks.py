"""Acknowledgement rules: AppRec correlation and fingerprints (the overdue rules are in test_overdue.py)."""

from __future__ import annotations

import dataclasses
import itertools
import unicodedata
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edi_gateway.domain.acks import (
    AckOutcome,
    KnownAppRec,
    SenderIdentity,
    SentMessage,
    apprec_fingerprint,
    apprec_problems,
    decide,
    resolve_sender,
    steps_to,
)
from edi_gateway.domain.apprec import AppRec, AppRecError, AppRecParty, AppRecStatus, PartyId
from edi_gateway.domain.states import TERMINAL_MESSAGE_STATES, MessageState, can_transition

# Synthetic HER-ids: a kommune with two services, a legekontor with a fastlege, and us.
KOMMUNE = 8100001
SERVICE = 8100002
OTHER_SERVICE = 8100003
CASE_OFFICER = 8100004
LEGEKONTOR = 8200001
FASTLEGE = 8200002
HOSPITAL = 9000001
MSG_ID = "5d79bd68-a58c-4599-a4e7-9db28ea20099"
APPREC_ID = "f6d24037-a43f-4509-8dfa-88b578554858"


def her(her_id: int) -> PartyId:
    """Return a HER-typed party id."""
    return PartyId(str(her_id), "HER")


def party(
    inst: int, dept: int | None = None, person: int | None = None, name: str = "Virksomhet"
) -> AppRecParty:
    """Return an AppRec party naming HER-ids only."""
    return AppRecParty(
        inst=her(inst),
        inst_name=name,
        dept=her(dept) if dept is not None else None,
        person=her(person) if person is not None else None,
    )


def apprec(**changes: Any) -> AppRec:
    """Return an AppRec from the kommune service answering MSG_ID with status OK, with ``changes``."""
    base = AppRec(
        version="1.1",
        id=APPREC_ID,
        gen_date="2026-05-26T10:00:00",
        status=AppRecStatus.OK,
        sender=party(KOMMUNE, SERVICE),
        receiver=party(HOSPITAL),
        original_msg_id=MSG_ID,
        original_msg_type="DIALOG_HELSEFAGLIG",
        original_issue_date="2026-05-25T09:00:00",
    )
    return dataclasses.replace(base, **changes)


def sent(
    state: MessageState = MessageState.SENT, *, org: int = KOMMUNE, addressed: int = SERVICE
) -> SentMessage:
    """Return the stored original of MSG_ID, addressed to ``addressed`` under ``org``."""
    return SentMessage(msg_id=MSG_ID, state=state, receiver_org_her_id=org, receiver_her_id=addressed)


REJECTED = apprec(
    status=AppRecStatus.AVVIST,
    errors=(AppRecError("E10", "Ugyldig meldingsidentifikator"), AppRecError("X99", "Annen feil")),
)


# --- Correlation: the order of the checks ------------------------------------------------------


def test_redelivery_is_a_duplicate_whatever_the_state_and_register_say() -> None:
    """An AppRec already stored with the same content is a no-op, even after it made the message terminal."""
    known = KnownAppRec(APPREC_ID, apprec_fingerprint(apprec()))
    decision = decide(apprec(), original=sent(MessageState.ACKED), previous=known, sender_org_her_id=None)
    assert decision.kind == AckOutcome.DUPLICATE
    assert (decision.alert, decision.park, decision.record) == (False, False, False)
    assert decision.to_state is None and decision.steps == ()


def test_same_id_with_other_content_is_a_conflict() -> None:
    """An AppRec id seen before with other business content is parked with an alert and changes nothing."""
    known = KnownAppRec(APPREC_ID, apprec_fingerprint(apprec()))
    decision = decide(REJECTED, original=sent(), previous=known, sender_org_her_id=KOMMUNE)
    assert decision.kind == AckOutcome.CONFLICT
    assert (decision.alert, decision.park, decision.record) == (True, True, False)
    assert decision.to_state is None and decision.steps == ()


def test_conflict_is_found_before_the_unknown_message() -> None:
    """A reused AppRec id is reported as a conflict even when its OriginalMsgId is not ours."""
    known = KnownAppRec(APPREC_ID, "0" * 64)
    decision = decide(apprec(), original=None, previous=known, sender_org_her_id=None)
    assert decision.kind == AckOutcome.CONFLICT


def test_unknown_message_is_parked_without_alert() -> None:
    """An AppRec for a MsgId we never sent is parked with the agreed reason, before any sender check."""
    decision = decide(apprec(), original=None, previous=None, sender_org_her_id=None)
    assert decision.kind == AckOutcome.UNKNOWN_MESSAGE
    assert decision.reason == "OriginalMsgId is not a message we sent"
    assert (decision.alert, decision.park, decision.record) == (False, True, False)


def test_wrong_sender_is_judged_before_the_state() -> None:
    """An AppRec from the wrong party for an answered message is a wrong sender, not a late answer."""
    decision = decide(
        apprec(), original=sent(MessageState.ACKED), previous=None, sender_org_her_id=LEGEKONTOR
    )
    assert decision.kind == AckOutcome.WRONG_SENDER
    assert (decision.alert, decision.park, decision.record) == (True, True, False)
    assert decision.steps == ()


def test_original_msg_id_matches_case_insensitively() -> None:
    """A MsgId written in upper case by the receiver still answers our lower-case UUID."""
    decision = decide(
        apprec(original_msg_id=f"  {MSG_ID.upper()}"),
        original=sent(),
        previous=None,
        sender_org_her_id=KOMMUNE,
    )
    assert decision.kind == AckOutcome.TRANSITION


def test_a_mismatched_original_is_a_wiring_bug() -> None:
    """Passing a stored message other than the one the AppRec names raises instead of deciding."""
    other = dataclasses.replace(sent(), msg_id="00000000-0000-4000-8000-000000000000")
    with pytest.raises(ValueError, match="OriginalMsgId"):
        decide(apprec(), original=other, previous=None, sender_org_her_id=KOMMUNE)


def test_a_mismatched_previous_is_a_wiring_bug() -> None:
    """Passing a stored AppRec under another id raises instead of deciding."""
    with pytest.raises(ValueError, match="AppRec's id"):
        decide(apprec(), original=sent(), previous=KnownAppRec("other", "x"), sender_org_her_id=KOMMUNE)


# --- Correlation: the sender -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sender", "sender_org", "original", "accepted"),
    [
        pytest.param(party(KOMMUNE, SERVICE), KOMMUNE, sent(), True, id="kommune-names-addressed-service"),
        pytest.param(party(KOMMUNE), KOMMUNE, sent(), True, id="kommune-virksomhet-without-dept"),
        pytest.param(party(SERVICE), KOMMUNE, sent(), True, id="service-written-as-inst"),
        pytest.param(
            party(KOMMUNE, SERVICE, CASE_OFFICER), KOMMUNE, sent(), True, id="service-and-case-officer"
        ),
        pytest.param(party(KOMMUNE, OTHER_SERVICE), KOMMUNE, sent(), False, id="kommune-names-other-service"),
        pytest.param(party(KOMMUNE, None, CASE_OFFICER), KOMMUNE, sent(), False, id="person-not-addressed"),
        pytest.param(party(KOMMUNE, SERVICE), None, sent(), False, id="sender-unknown-to-register"),
        pytest.param(party(LEGEKONTOR), LEGEKONTOR, sent(), False, id="other-virksomhet"),
        pytest.param(
            party(KOMMUNE, OTHER_SERVICE),
            KOMMUNE,
            sent(addressed=KOMMUNE),
            True,
            id="addressed-virksomhet-any-dept",
        ),
        pytest.param(
            party(LEGEKONTOR, None, FASTLEGE),
            LEGEKONTOR,
            sent(org=LEGEKONTOR, addressed=FASTLEGE),
            True,
            id="fastlege-as-person",
        ),
        pytest.param(
            party(LEGEKONTOR, FASTLEGE),
            LEGEKONTOR,
            sent(org=LEGEKONTOR, addressed=FASTLEGE),
            True,
            id="fastlege-as-dept",
        ),
        pytest.param(
            party(LEGEKONTOR, None, FASTLEGE + 1),
            LEGEKONTOR,
            sent(org=LEGEKONTOR, addressed=FASTLEGE),
            False,
            id="another-fastlege",
        ),
        pytest.param(
            AppRecParty(her(KOMMUNE), person=PartyId("9144900", "HPR")),
            KOMMUNE,
            sent(),
            True,
            id="hpr-typed-person-not-compared",
        ),
        pytest.param(
            AppRecParty(her(KOMMUNE), dept=her(SERVICE), additional=(her(KOMMUNE),)),
            KOMMUNE,
            sent(),
            True,
            id="additional-id-repeats-the-virksomhet",
        ),
        pytest.param(
            AppRecParty(PartyId("960267737", "ENH"), dept=her(SERVICE), additional=(her(KOMMUNE),)),
            KOMMUNE,
            sent(),
            True,
            id="her-id-only-in-additional-id",
        ),
        pytest.param(
            AppRecParty(her(KOMMUNE), dept=her(SERVICE), additional=(her(OTHER_SERVICE),)),
            KOMMUNE,
            sent(),
            False,
            id="additional-id-names-another-service",
        ),
        pytest.param(
            AppRecParty(her(OTHER_SERVICE), dept=her(SERVICE)),
            KOMMUNE,
            sent(),
            False,
            id="inst-names-another-service",
        ),
        pytest.param(
            party(KOMMUNE, OTHER_SERVICE, SERVICE),
            KOMMUNE,
            sent(),
            False,
            id="addressed-named-as-person-but-dept-another-service",
        ),
        pytest.param(
            party(SERVICE, OTHER_SERVICE),
            KOMMUNE,
            sent(),
            False,
            id="addressed-as-inst-but-dept-another-service",
        ),
        pytest.param(
            AppRecParty(her(KOMMUNE), additional=(her(LEGEKONTOR),)),
            KOMMUNE,
            sent(addressed=KOMMUNE),
            False,
            id="addressed-virksomhet-additional-id-another-virksomhet",
        ),
    ],
)
def test_sender_rules(
    sender: AppRecParty, sender_org: int | None, original: SentMessage, accepted: bool
) -> None:
    """The AppRec must come from the virksomhet addressed and, when it names units, name the one addressed."""
    decision = decide(apprec(sender=sender), original=original, previous=None, sender_org_her_id=sender_org)
    assert decision.kind == (AckOutcome.TRANSITION if accepted else AckOutcome.WRONG_SENDER)
    assert decision.alert is not accepted


def test_wrong_sender_reason_names_her_ids_only() -> None:
    """The wrong-sender reason explains the mismatch with HER-ids (operators need them; not personal)."""
    decision = decide(
        apprec(sender=party(KOMMUNE, OTHER_SERVICE)),
        original=sent(),
        previous=None,
        sender_org_her_id=KOMMUNE,
    )
    assert str(OTHER_SERVICE) in decision.reason and str(SERVICE) in decision.reason


# --- The sender's identity ---------------------------------------------------------------------

OTHER_KOMMUNE = 8300001
OTHER_KOMMUNE_SERVICE = 8300002
UNKNOWN = 8999999
# What the register says owns each HER-id (the persons of LEGEKONTOR included; CASE_OFFICER is not registered).
OWNERS = {
    KOMMUNE: KOMMUNE,
    SERVICE: KOMMUNE,
    OTHER_SERVICE: KOMMUNE,
    LEGEKONTOR: LEGEKONTOR,
    FASTLEGE: LEGEKONTOR,
    OTHER_KOMMUNE: OTHER_KOMMUNE,
    OTHER_KOMMUNE_SERVICE: OTHER_KOMMUNE,
}


@pytest.mark.parametrize(
    ("sender", "identity"),
    [
        pytest.param(party(KOMMUNE, SERVICE), SenderIdentity(KOMMUNE), id="virksomhet-and-its-service"),
        pytest.param(party(SERVICE), SenderIdentity(KOMMUNE), id="service-as-inst"),
        pytest.param(
            party(KOMMUNE, SERVICE, CASE_OFFICER), SenderIdentity(KOMMUNE), id="unregistered-person"
        ),
        pytest.param(
            party(LEGEKONTOR, None, FASTLEGE), SenderIdentity(LEGEKONTOR), id="legekontor-and-its-gp"
        ),
        pytest.param(
            AppRecParty(PartyId("960267737", "ENH"), additional=(her(KOMMUNE),)),
            SenderIdentity(KOMMUNE),
            id="her-id-in-additional-id-only",
        ),
        pytest.param(
            AppRecParty(PartyId("", None), person=her(FASTLEGE)),
            SenderIdentity(LEGEKONTOR),
            id="professional-outside-an-institution",
        ),
    ],
)
def test_a_sender_naming_one_party_resolves_to_it(sender: AppRecParty, identity: SenderIdentity) -> None:
    """Every HER-id the sender names belongs to one registered virksomhet: that is the sender."""
    assert resolve_sender(sender, OWNERS) == identity


@pytest.mark.parametrize(
    ("sender", "code", "named"),
    [
        pytest.param(
            AppRecParty(her(KOMMUNE), additional=(her(OTHER_KOMMUNE),)),
            "apprec.conflicting_sender",
            (KOMMUNE, OTHER_KOMMUNE),
            id="inst-vs-additional-id",
        ),
        pytest.param(
            party(KOMMUNE, OTHER_KOMMUNE_SERVICE),
            "apprec.conflicting_sender",
            (KOMMUNE, OTHER_KOMMUNE),
            id="inst-vs-dept",
        ),
        pytest.param(
            AppRecParty(her(OTHER_KOMMUNE), dept=her(SERVICE)),
            "apprec.conflicting_sender",
            (KOMMUNE, OTHER_KOMMUNE),
            id="dept-vs-inst",
        ),
        pytest.param(
            AppRecParty(PartyId("960267737", "ENH"), dept=her(SERVICE), additional=(her(OTHER_KOMMUNE),)),
            "apprec.conflicting_sender",
            (KOMMUNE, OTHER_KOMMUNE),
            id="additional-id-vs-dept",
        ),
        pytest.param(
            party(KOMMUNE, SERVICE, FASTLEGE),
            "apprec.conflicting_sender",
            (KOMMUNE, LEGEKONTOR),
            id="registered-person-of-another-virksomhet",
        ),
        pytest.param(
            AppRecParty(her(KOMMUNE), additional=(her(UNKNOWN),)),
            "apprec.unknown_sender",
            (UNKNOWN,),
            id="unknown-additional-id",
        ),
        pytest.param(party(KOMMUNE, UNKNOWN), "apprec.unknown_sender", (UNKNOWN,), id="unknown-dept"),
        pytest.param(party(UNKNOWN), "apprec.unknown_sender", (UNKNOWN,), id="unknown-inst"),
        pytest.param(
            AppRecParty(PartyId("960267737", "ENH"), person=PartyId("9144900", "HPR")),
            "apprec.unknown_sender",
            (),
            id="no-her-id-at-all",
        ),
        pytest.param(
            AppRecParty(PartyId("", None), person=her(CASE_OFFICER)),
            "apprec.unknown_sender",
            (),
            id="only-an-unregistered-person",
        ),
    ],
)
def test_a_sender_naming_two_parties_or_unknown_ids_is_refused(
    sender: AppRecParty, code: str, named: tuple[int, ...]
) -> None:
    """Ids that name more than one virksomhet, or an institution or department unknown to the register, are refused."""
    identity = resolve_sender(sender, OWNERS)
    assert identity.her_id is None and identity.code == code
    assert identity.reason is not None and all(str(h) in identity.reason for h in named)


# --- Correlation: the state --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "status", "steps"),
    [
        (MessageState.SENT, AppRecStatus.OK, (MessageState.ACKED,)),
        (MessageState.SENT, AppRecStatus.OK_FEIL_I_DELMELDING, (MessageState.ACKED_WITH_ERRORS,)),
        (MessageState.SENT, AppRecStatus.AVVIST, (MessageState.REJECTED_BY_RECEIVER,)),
        (MessageState.OVERDUE, AppRecStatus.OK, (MessageState.ACKED,)),
        (MessageState.OVERDUE, AppRecStatus.AVVIST, (MessageState.REJECTED_BY_RECEIVER,)),
        (MessageState.QUEUED, AppRecStatus.OK, (MessageState.SENT, MessageState.ACKED)),
        (MessageState.QUEUED, AppRecStatus.AVVIST, (MessageState.SENT, MessageState.REJECTED_BY_RECEIVER)),
        (MessageState.FAILED, AppRecStatus.OK, (MessageState.SENT, MessageState.ACKED)),
        (
            MessageState.FAILED,
            AppRecStatus.OK_FEIL_I_DELMELDING,
            (MessageState.SENT, MessageState.ACKED_WITH_ERRORS),
        ),
    ],
)
def test_answer_lands(state: MessageState, status: AppRecStatus, steps: tuple[MessageState, ...]) -> None:
    """An authentic AppRec moves a waiting, late, unconfirmed or failed message to the state of its status."""
    decision = decide(apprec(status=status), original=sent(state), previous=None, sender_org_her_id=KOMMUNE)
    assert decision.kind == AckOutcome.TRANSITION
    assert decision.steps == steps
    assert decision.to_state == steps[-1]
    assert (decision.alert, decision.park, decision.record) == (False, False, True)
    assert state.value in decision.reason and steps[-1].value in decision.reason


@pytest.mark.parametrize("state", sorted(TERMINAL_MESSAGE_STATES))
@pytest.mark.parametrize("status", list(AppRecStatus))
def test_answered_message_keeps_its_state(state: MessageState, status: AppRecStatus) -> None:
    """A second answer to an answered message is recorded, with its errors, and never overwrites the state."""
    decision = decide(
        REJECTED if status == AppRecStatus.AVVIST else apprec(status=status),
        original=sent(state),
        previous=None,
        sender_org_her_id=KOMMUNE,
    )
    assert decision.kind == AckOutcome.ALREADY_TERMINAL
    assert decision.to_state is None and decision.steps == ()
    assert (decision.alert, decision.park, decision.record) == (False, False, True)
    assert len(decision.errors) == (2 if status == AppRecStatus.AVVIST else 0)


@pytest.mark.parametrize("state", [s for s in MessageState if s not in TERMINAL_MESSAGE_STATES])
@pytest.mark.parametrize("status", list(AppRecStatus))
def test_every_landing_path_is_allowed_by_the_state_machine(
    state: MessageState, status: AppRecStatus
) -> None:
    """Each step a landing AppRec asks for is a transition the store will accept."""
    decision = decide(apprec(status=status), original=sent(state), previous=None, sender_org_her_id=KOMMUNE)
    path = (state, *decision.steps)
    assert all(can_transition(a, b) for a, b in itertools.pairwise(path))


def test_no_path_out_of_a_terminal_state() -> None:
    """Asking for a landing path from a terminal state is refused."""
    with pytest.raises(ValueError, match="no path"):
        steps_to(MessageState.ACKED, MessageState.REJECTED_BY_RECEIVER)


def test_rejection_carries_its_errors_as_problems() -> None:
    """The errors of an Avvist AppRec reach the decision as apprec codes with their texts, in order."""
    decision = decide(REJECTED, original=sent(), previous=None, sender_org_her_id=KOMMUNE)
    assert [p.as_dict() for p in decision.errors] == [
        {"code": "apprec.E10", "reason": "Ugyldig meldingsidentifikator"},
        {"code": "apprec.X99", "reason": "Annen feil"},
    ]


@pytest.mark.parametrize(
    ("error", "code", "reason"),
    [
        (AppRecError(" T02 ", "  Ikke\n  gyldig "), "apprec.T02", "Ikke gyldig"),
        (AppRecError("E99", ""), "apprec.E99", "the receiver gave no text for this error"),
        (
            AppRecError("12", "Feil", kodeverk="2.16.578.1.12.4.1.1.9999"),
            "apprec.2.16.578.1.12.4.1.1.9999.12",
            "Feil",
        ),
        (AppRecError("X99", "Feil for 01817012345 her"), "apprec.X99", "Feil for *********** her"),
        (AppRecError("X99", "Ukjent", original_text="Ola Nordmann 01817012345"), "apprec.X99", "Ukjent"),
    ],
)
def test_error_problem_form(error: AppRecError, code: str, reason: str) -> None:
    """Error texts are normalised, never empty, masked where they look like a person number, and skip OT."""
    (problem,) = apprec_problems(apprec(status=AppRecStatus.AVVIST, errors=(error,)))
    assert (problem.code, problem.reason) == (code, reason)


def test_long_error_text_is_shortened() -> None:
    """A very long error text is cut so it cannot flood the status event."""
    (problem,) = apprec_problems(apprec(errors=(AppRecError("X99", "ord " * 400),)))
    assert len(problem.reason) == 500 and problem.reason.endswith("…")


# --- Fingerprint -------------------------------------------------------------------------------


def test_fingerprint_is_pinned() -> None:
    """The fingerprint of a fixed AppRec never changes, so fingerprints already stored keep matching."""
    assert apprec_fingerprint(REJECTED) == "0bce065b39fb4e6c82b80f9e78a9e69e34e9e6246c61f4e1f3ca3a0cc48c6b19"


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"id": "another-id"}, id="apprec-id"),
        pytest.param({"gen_date": "2026-06-01T00:00:00"}, id="gen-date"),
        pytest.param({"version": "1.0"}, id="version"),
        pytest.param({"sender": party(KOMMUNE, SERVICE, name="Annet navn")}, id="party-name"),
        pytest.param({"sender": dataclasses.replace(party(KOMMUNE, SERVICE), role="REQ")}, id="party-role"),
        pytest.param({"original_msg_type": "DIALOG_NOTAT"}, id="original-type"),
        pytest.param({"original_issue_date": "2026-05-25T09:00:00.000"}, id="original-issue-date"),
        pytest.param({"original_msg_id": MSG_ID.upper()}, id="msg-id-case"),
        pytest.param({"errors": tuple(reversed(REJECTED.errors))}, id="error-order"),
        pytest.param(
            {"errors": (AppRecError("E10", "  Ugyldig\n\tmeldingsidentifikator "), REJECTED.errors[1])},
            id="error-text-whitespace",
        ),
    ],
)
def test_fingerprint_ignores_presentation(changes: dict[str, Any]) -> None:
    """A re-emitted copy of the same answer, differing only in presentation, has the same fingerprint."""
    assert apprec_fingerprint(dataclasses.replace(REJECTED, **changes)) == apprec_fingerprint(REJECTED)


def test_fingerprint_ignores_unicode_composition() -> None:
    """Composed and decomposed Norwegian letters in an error text hash alike."""
    composed = apprec(errors=(AppRecError("X99", "Mottaker på ferie, søk igjen"),))
    decomposed = apprec(
        errors=(AppRecError("X99", unicodedata.normalize("NFD", "Mottaker på ferie, søk igjen")),)
    )
    assert apprec_fingerprint(composed) == apprec_fingerprint(decomposed)


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"status": AppRecStatus.OK_FEIL_I_DELMELDING}, id="status"),
        pytest.param({"original_msg_id": "00000000-0000-4000-8000-000000000000"}, id="original-msg-id"),
        pytest.param({"errors": REJECTED.errors[:1]}, id="error-removed"),
        pytest.param({"errors": (*REJECTED.errors, AppRecError("E20", "x"))}, id="error-added"),
        pytest.param(
            {"errors": (AppRecError("E11", "Ugyldig meldingsidentifikator"), REJECTED.errors[1])},
            id="error-code",
        ),
        pytest.param(
            {"errors": (AppRecError("E10", "Ugyldig melding"), REJECTED.errors[1])}, id="error-text"
        ),
        pytest.param(
            {
                "errors": (
                    AppRecError("E10", "Ugyldig meldingsidentifikator", kodeverk="1.2.3"),
                    REJECTED.errors[1],
                )
            },
            id="error-kodeverk",
        ),
        pytest.param(
            {
                "errors": (
                    AppRecError("E10", "Ugyldig meldingsidentifikator", original_text="MsgId"),
                    REJECTED.errors[1],
                )
            },
            id="error-pointer",
        ),
        pytest.param({"sender": party(KOMMUNE, OTHER_SERVICE)}, id="sender-dept"),
        pytest.param({"sender": party(KOMMUNE, SERVICE, CASE_OFFICER)}, id="sender-person"),
        pytest.param({"sender": party(LEGEKONTOR, SERVICE)}, id="sender-inst"),
        pytest.param(
            {"sender": AppRecParty(PartyId(str(KOMMUNE), "ENH"), dept=her(SERVICE))}, id="sender-id-type"
        ),
        pytest.param({"receiver": party(HOSPITAL, 9000002)}, id="receiver-dept"),
        pytest.param({"sender": party(HOSPITAL), "receiver": party(KOMMUNE, SERVICE)}, id="parties-swapped"),
    ],
)
def test_fingerprint_sees_every_business_field(changes: dict[str, Any]) -> None:
    """Any change to status, errors, OriginalMsgId or the parties' ids changes the fingerprint."""
    assert apprec_fingerprint(dataclasses.replace(REJECTED, **changes)) != apprec_fingerprint(REJECTED)


_texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=20)
_errors = st.builds(AppRecError, code=st.sampled_from(["E10", "E20", "T02", "X99"]), text=_texts)
_her_ids = st.integers(min_value=1, max_value=99_999_999)


@st.composite
def _apprecs(draw: st.DrawFn) -> AppRec:
    return apprec(
        status=draw(st.sampled_from(list(AppRecStatus))),
        errors=tuple(draw(st.lists(_errors, max_size=3))),
        sender=party(draw(_her_ids), draw(st.none() | _her_ids), draw(st.none() | _her_ids)),
        original_msg_id=str(draw(st.uuids())),
    )


@given(_apprecs(), st.text(max_size=10), st.sampled_from(["1.0", "1.1"]))
def test_fingerprint_is_a_function_of_business_content(value: AppRec, gen_date: str, version: str) -> None:
    """Equal business content gives an equal 64-digit hex fingerprint, whatever the envelope fields say."""
    copy = dataclasses.replace(value, id="copy", gen_date=gen_date, version=version)
    assert apprec_fingerprint(copy) == apprec_fingerprint(value)
    assert len(apprec_fingerprint(value)) == 64 and int(apprec_fingerprint(value), 16) >= 0


@given(_apprecs(), st.sampled_from(list(AppRecStatus)))
def test_fingerprint_follows_the_status(value: AppRec, status: AppRecStatus) -> None:
    """Two AppRecs that differ in status never share a fingerprint."""
    other = dataclasses.replace(value, status=status)
    assert (apprec_fingerprint(other) == apprec_fingerprint(value)) == (status == value.status)
