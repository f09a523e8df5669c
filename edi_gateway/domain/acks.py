"""Acknowledgement rules: what an incoming AppRec does, and the fingerprint that spots a redelivery.

Everything here is pure: no I/O and no clock. The acknowledgement service resolves the AppRec's
sender once, through the Adresseregister and :func:`resolve_sender`, and uses that one identity both
to pick the certificate that must verify the signature and for correlation; it looks up the original
message and any AppRec already stored under the same id, asks :func:`decide`, and applies the answer. The rules for a message that gets no
answer (resend, overdue, quiet receivers) are in ``edi_gateway.domain.overdue``.

Nothing in a ``reason`` names a person: reasons carry states, status codes, MsgIds and HER-ids only.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from edi_gateway.domain.apprec import KODEVERK_ERROR, AppRec, AppRecError, AppRecParty, AppRecStatus, PartyId
from edi_gateway.domain.states import TERMINAL_MESSAGE_STATES, MessageState, can_transition
from edi_gateway.errors import Problem

FINGERPRINT_VERSION = 1
"""Part of the hashed content, so a future change of what is hashed cannot collide with stored values."""

_STATUS_TO_STATE: dict[AppRecStatus, MessageState] = {
    AppRecStatus.OK: MessageState.ACKED,
    AppRecStatus.OK_FEIL_I_DELMELDING: MessageState.ACKED_WITH_ERRORS,
    AppRecStatus.AVVIST: MessageState.REJECTED_BY_RECEIVER,
}

# A receiver's free error text may quote the message; an 11-digit run could be a person number.
_PERSON_NUMBER_LIKE = re.compile(r"(?<!\d)\d{11}(?!\d)")
_MAX_ERROR_TEXT = 500


# --- The sender's identity ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SenderIdentity:
    """The one virksomhet an AppRec's sender names, or why it names none.

    Attributes:
        her_id: the virksomhet's HER-id; None when the sender is refused.
        code: the park code of a refusal (``apprec.unknown_sender``, ``apprec.conflicting_sender``).
        reason: why it was refused (HER-ids only, no personal data).
    """

    her_id: int | None
    code: str | None = None
    reason: str | None = None


def resolve_sender(sender: AppRecParty, owners: Mapping[int, int]) -> SenderIdentity:
    """Return the one virksomhet the AppRec's sender names, or why it cannot be told.

    Every HER-id of ``Inst/Id``, ``AdditionalId`` and ``Dept`` must be in the register, and every
    HER-id the sender names must belong to the same virksomhet: an AppRec whose ids name two
    parties is refused, whichever of them signed it, since the certificate is chosen by one and
    correlation might follow the other. A person HER-id (``HCPerson``, ``HCProf``) the register does
    not know is tolerated (a kommune's case officer need not be registered); a known one counts.
    Ids typed otherwise (organisation number, HPR number) are not compared.

    Args:
        sender: the AppRec's ``Sender``.
        owners: for every HER-id the register knows among those the sender names, the HER-id of the
            virksomhet owning it (itself for a virksomhet); unknown HER-ids are absent.
    """
    must_know = sender.institution_her_ids | _her_ids_of(sender.dept)
    unknown = sorted(h for h in must_know if h not in owners)
    if unknown:
        return _refused(
            "apprec.unknown_sender",
            f"the AppRec's sender names HER-id {_listed(unknown)}, which the address register does not know",
        )
    virksomheter = sorted({owners[h] for h in sender.her_ids if h in owners})
    if not virksomheter:
        return _refused(
            "apprec.unknown_sender", "the AppRec's sender names no HER-id the address register knows"
        )
    if len(virksomheter) > 1:
        return _refused(
            "apprec.conflicting_sender",
            f"the AppRec's sender names HER-ids of {len(virksomheter)} virksomheter ({_listed(virksomheter)}); "
            "Inst, AdditionalId, Dept and HCPerson must name one party",
        )
    return SenderIdentity(virksomheter[0])


def _refused(code: str, reason: str) -> SenderIdentity:
    return SenderIdentity(None, code, reason)


def _her_ids_of(party_id: PartyId | None) -> frozenset[int]:
    her_id = party_id.her_id if party_id is not None else None
    return frozenset() if her_id is None else frozenset({her_id})


def _listed(her_ids: list[int] | frozenset[int] | set[int]) -> str:
    return ", ".join(str(h) for h in sorted(her_ids))


# --- Correlation -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SentMessage:
    """What the store knows about the message an AppRec claims to answer.

    Attributes:
        msg_id: the MsgId we sent.
        state: the message's state now.
        receiver_org_her_id: the virksomhet we addressed (``Receiver/Organisation/Ident``).
        receiver_her_id: the most specific HER-id we addressed (kommune service, fastlege, or the
            virksomhet itself when nothing more specific was addressed).
    """

    msg_id: str
    state: MessageState
    receiver_org_her_id: int
    receiver_her_id: int


@dataclass(frozen=True, slots=True)
class KnownAppRec:
    """An AppRec already stored under the same AppRec id.

    Attributes:
        apprec_id: its ``Id``.
        fingerprint: :func:`apprec_fingerprint` of its business content.
    """

    apprec_id: str
    fingerprint: str


class AckOutcome(StrEnum):
    """What an incoming AppRec does."""

    DUPLICATE = "duplicate"  # redelivery of an AppRec we already have: nothing to do
    CONFLICT = "conflict"  # same AppRec id, different content: park and alert
    UNKNOWN_MESSAGE = "unknown_message"  # answers no message we sent: park
    WRONG_SENDER = "wrong_sender"  # not from the receiver we addressed: park and alert
    TRANSITION = "transition"  # the answer lands: move the message to its new state
    ALREADY_TERMINAL = "already_terminal"  # answered before: record this AppRec, keep the state


_PARKED = frozenset({AckOutcome.CONFLICT, AckOutcome.UNKNOWN_MESSAGE, AckOutcome.WRONG_SENDER})
_ALERTING = frozenset({AckOutcome.CONFLICT, AckOutcome.WRONG_SENDER})
_ANSWERS = frozenset({AckOutcome.TRANSITION, AckOutcome.ALREADY_TERMINAL})


@dataclass(frozen=True, slots=True)
class AckDecision:
    """The decision on one incoming AppRec; the service applies it.

    Attributes:
        kind: what the AppRec does.
        reason: plain-language reason for the event row, the parked record and the alert (no personal data).
        to_state: the message's new state (``TRANSITION`` only).
        steps: the states to move through, in order, from the message's current state to ``to_state``;
            each step is allowed by ``can_transition``. Usually one step; two (``sent`` first) when the
            message is still ``queued`` or ``failed``.
        errors: the AppRec's errors as problems, for storage and the status event (``TRANSITION`` and
            ``ALREADY_TERMINAL``).
    """

    kind: AckOutcome
    reason: str
    to_state: MessageState | None = None
    steps: tuple[MessageState, ...] = ()
    errors: tuple[Problem, ...] = ()

    @property
    def alert(self) -> bool:
        """Whether an operator should be alerted: the AppRec is suspicious (conflict, wrong sender)."""
        return self.kind in _ALERTING

    @property
    def park(self) -> bool:
        """Whether the AppRec is parked for an operator instead of being linked to a message."""
        return self.kind in _PARKED

    @property
    def record(self) -> bool:
        """Whether the AppRec is stored as an answer to the original message.

        Exactly these AppRecs are authentic answers from the receiver: feed them to ``overdue.on_apprec``.
        """
        return self.kind in _ANSWERS


def decide(
    apprec: AppRec,
    *,
    original: SentMessage | None,
    previous: KnownAppRec | None,
    sender_org_her_id: int | None,
) -> AckDecision:
    """Decide what an incoming AppRec does.

    The checks run in this order, and the order is part of the rule:

    1. Same AppRec id stored before (``previous``): a redelivery is a no-op (``DUPLICATE``) and a
       different content under the same id is a ``CONFLICT``. This comes first because AppRecs
       arrive at least once: the second delivery of an AppRec that already moved its message must
       not be judged against the state it caused (it would look ``ALREADY_TERMINAL``) or against
       register data that changed since (it would look like a ``WRONG_SENDER``).
    2. No original (``UNKNOWN_MESSAGE``): nothing else can be checked without it.
    3. The sender (``WRONG_SENDER``) before the state: an AppRec from the wrong party must change
       nothing and must not even be recorded as a late answer to someone else's message. The sender
       is exactly the original's receiver, by :func:`sender_mismatch`.
    4. The state: a message already answered keeps its answer (``ALREADY_TERMINAL``); any other
       state takes the answer (``TRANSITION``), see :func:`steps_to`.

    Args:
        apprec: the parsed AppRec, its signature already checked according to the policy.
        original: the message with MsgId ``apprec.original_msg_id``, or None when we never sent one.
        previous: the AppRec stored under ``apprec.id``, or None when this id is new.
        sender_org_her_id: the virksomhet :func:`resolve_sender` found for the AppRec's sender (the
            same identity whose certificate verified a signed AppRec), or None when there is none.

    Raises:
        ValueError: ``previous`` or ``original`` is not the one the AppRec names (a wiring bug).
    """
    if previous is not None:
        return _same_id(apprec, previous)
    if original is None:
        return AckDecision(AckOutcome.UNKNOWN_MESSAGE, "OriginalMsgId is not a message we sent")
    if not _same_id_text(original.msg_id, apprec.original_msg_id):
        raise ValueError("original is not the message the AppRec's OriginalMsgId names")
    wrong_sender = sender_mismatch(apprec.sender, original, sender_org_her_id=sender_org_her_id)
    if wrong_sender is not None:
        return AckDecision(AckOutcome.WRONG_SENDER, wrong_sender)
    return _answer(apprec, original)


def _same_id(apprec: AppRec, previous: KnownAppRec) -> AckDecision:
    if not _same_id_text(previous.apprec_id, apprec.id):
        raise ValueError("previous is not stored under this AppRec's id")
    if previous.fingerprint == apprec_fingerprint(apprec):
        return AckDecision(AckOutcome.DUPLICATE, "this AppRec was received before; nothing to do")
    return AckDecision(
        AckOutcome.CONFLICT,
        "an AppRec with this id was received before with different content; nothing was changed",
    )


def sender_mismatch(
    sender: AppRecParty, original: SentMessage, *, sender_org_her_id: int | None
) -> str | None:
    """Return why the AppRec's sender is not the party the original was sent to, or None when it is.

    The virksomhet must be the one we addressed. Below it, an AppRec may name no department or
    person at all (a kommune often answers as the virksomhet for a message addressed to one of its
    services). Otherwise every id it names must fit the address, exactly:

    * ``Inst/Id`` and ``AdditionalId`` HER-ids name the virksomhet or the HER-id we addressed (some
      systems write the service there), nothing else;
    * when we addressed a service or a person, it must be among the HER-ids named, and a ``Dept``
      must be that very HER-id: naming another service is naming another party;
    * a person (``HCPerson``) besides the addressed service is fine (the case officer's own HER-id);
    * a message addressed to the virksomhet itself accepts any department.

    Ids typed otherwise (HPR number, organisation number) cannot be compared here and are left to
    the register lookup. That every known HER-id belongs to the one virksomhet is
    :func:`resolve_sender`'s rule, applied before.

    Args:
        sender: the AppRec's ``Sender``.
        original: the message the AppRec answers.
        sender_org_her_id: the virksomhet :func:`resolve_sender` found for the sender, None when unknown.
    """
    org, addressed = original.receiver_org_her_id, original.receiver_her_id
    if sender_org_her_id is None:
        return "the AppRec's sender is not in the address register"
    if sender_org_her_id != org:
        return f"the AppRec comes from virksomhet HER-id {sender_org_her_id}, but the message was sent to HER-id {org}"
    stray = sender.institution_her_ids - {org, addressed}
    if stray:
        return (
            f"the AppRec's Inst/AdditionalId names HER-id {_listed(stray)}, "
            f"neither the virksomhet {org} nor the addressed HER-id {addressed}"
        )
    if addressed == org:
        return None
    # The Inst id is dropped too: some systems put the virksomhet there, which says nothing below it.
    named = sender.her_ids - {org}
    if not named:
        return None
    if addressed not in named:
        return f"the AppRec names HER-id {_listed(named)} but the message was addressed to HER-id {addressed}"
    dept = sender.dept.her_id if sender.dept is not None else None
    if dept is not None and dept != addressed:
        return (
            f"the AppRec names department HER-id {dept} but the message was addressed to HER-id {addressed}"
        )
    return None


def _answer(apprec: AppRec, original: SentMessage) -> AckDecision:
    answered = _STATUS_TO_STATE[apprec.status]
    errors = apprec_problems(apprec)
    status = f"AppRec status {int(apprec.status)} ({apprec.status.name})"
    if original.state in TERMINAL_MESSAGE_STATES:
        reason = f"{status} recorded; the message was already {original.state.value} and stays so"
        return AckDecision(AckOutcome.ALREADY_TERMINAL, reason, errors=errors)
    reason = f"{status}: {original.state.value} → {answered.value}"
    if original.state in (MessageState.QUEUED, MessageState.FAILED):
        reason += " (the AppRec proves the receiver got the message)"
    return AckDecision(
        AckOutcome.TRANSITION,
        reason,
        to_state=answered,
        steps=steps_to(original.state, answered),
        errors=errors,
    )


def steps_to(current: MessageState, answered: MessageState) -> tuple[MessageState, ...]:
    """Return the states a message moves through when an AppRec answer lands, in order.

    ``sent`` and ``overdue`` go straight to the answer (a late AppRec still lands). ``queued`` (the
    AppRec raced ahead of the broker's confirm) and ``failed`` (we gave up on the publish, yet the
    broker had delivered it) pass through ``sent`` first: the AppRec is proof of delivery, and hiding
    the receiver's answer would leave the nurse believing the message never arrived and invite an
    operator to send it again.

    Args:
        current: the message's state now; not terminal.
        answered: the state the AppRec's status means.

    Raises:
        ValueError: the state machine allows no path (``current`` is terminal).
    """
    if can_transition(current, answered):
        return (answered,)
    if can_transition(current, MessageState.SENT) and can_transition(MessageState.SENT, answered):
        return (MessageState.SENT, answered)
    raise ValueError(f"no path from {current.value} to {answered.value}")


def apprec_problems(apprec: AppRec) -> tuple[Problem, ...]:
    """Return the AppRec's errors as problems, in order, for storage and the status event.

    The code is ``apprec.<V>`` for kodeverk 8221 and ``apprec.<S>.<V>`` for another error kodeverk;
    the reason is the error's text (``DN``), whitespace-normalised, shortened, with anything that
    looks like a person number masked. The pointer into the original (``OT``) is left out: it may
    quote the message.
    """
    return tuple(_problem(error) for error in apprec.errors)


def _problem(error: AppRecError) -> Problem:
    code = error.code.strip()
    kodeverk = error.kodeverk.strip()
    prefix = "apprec" if kodeverk == KODEVERK_ERROR else f"apprec.{kodeverk}"
    text = _PERSON_NUMBER_LIKE.sub("***********", _normalise_text(error.text))
    if len(text) > _MAX_ERROR_TEXT:
        text = text[: _MAX_ERROR_TEXT - 1] + "…"
    return Problem(code=f"{prefix}.{code}", reason=text or "the receiver gave no text for this error")


# --- Fingerprint -------------------------------------------------------------------------------


def apprec_fingerprint(apprec: AppRec) -> str:
    """Return a stable hash (SHA-256, hex) of the AppRec's business content.

    Hashed: status, errors (code, kodeverk, text, pointer), ``OriginalMsgId/Id`` and the typed ids
    of both parties. Left out, so that a re-emitted copy of the same answer is still a duplicate:
    the AppRec's own id (it is the key the fingerprint is compared under), ``GenDate``, the version,
    party names and roles, and the original's type and issue date (restatements of the message the
    id already names). Texts are compared after Unicode NFC and whitespace normalisation, the
    errors as a set (their order carries no meaning), the MsgId case-insensitively (it is a UUID).
    """
    content = {
        "fingerprint_version": FINGERPRINT_VERSION,
        "status": int(apprec.status),
        "original_msg_id": apprec.original_msg_id.strip().casefold(),
        "errors": sorted(_error_content(e) for e in apprec.errors),
        "sender": _party_content(apprec.sender),
        "receiver": _party_content(apprec.receiver),
    }
    canonical = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _error_content(error: AppRecError) -> list[str]:
    return [
        error.kodeverk.strip(),
        error.code.strip(),
        _normalise_text(error.text),
        _normalise_text(error.original_text or ""),
    ]


def _party_content(party: AppRecParty) -> list[list[str | None] | None]:
    return [_id_content(party.inst), _id_content(party.dept), _id_content(party.person)]


def _id_content(party_id: PartyId | None) -> list[str | None] | None:
    if party_id is None:
        return None
    return [party_id.id.strip(), party_id.type.strip() if party_id.type is not None else None]


def _normalise_text(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).split())


def _same_id_text(a: str, b: str) -> bool:
    return a.strip().casefold() == b.strip().casefold()
