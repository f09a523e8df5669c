"""Overdue rules: the sweep's deadline and resends, and quiet-receiver alerts."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edi_gateway.domain.overdue import (
    STANDARD_ACK_DEADLINE,
    AlertKind,
    OverdueAction,
    OverdueKind,
    PendingMessage,
    ReceiverHealth,
    ack_deadline,
    on_apprec,
    on_overdue,
    overdue_actions,
    sweep_cutoff,
)
from edi_gateway.domain.states import MessageState

SERVICE = 8100002  # a synthetic HER-id of a kommune service

# --- Overdue -----------------------------------------------------------------------------------

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def pending(
    state: MessageState = MessageState.SENT, *, sent_at: datetime = T0, first: datetime = T0, resends: int = 0
) -> PendingMessage:
    """Return pending message ``m1``, first sent at T0 unless told otherwise."""
    return PendingMessage("m1", state, sent_at=sent_at, first_sent_at=first, resends=resends)


def sweep(
    message: PendingMessage, now: datetime, *, resend_after: timedelta | None = None, max_resends: int = 0
) -> list[OverdueKind]:
    """Return the kinds of action the sweep takes for one message with the standard deadline."""
    actions = overdue_actions(
        [message], now=now, deadline=STANDARD_ACK_DEADLINE, resend_after=resend_after, max_resends=max_resends
    )
    return [a.kind for a in actions]


def test_standard_deadline_is_96_hours() -> None:
    """The standard AppRec deadline is 96 hours after the first send."""
    assert STANDARD_ACK_DEADLINE / timedelta(hours=1) == 96
    assert ack_deadline(T0, deadline=STANDARD_ACK_DEADLINE) == datetime(2026, 3, 6, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("message", "now", "resend_after", "max_resends", "expected"),
    [
        pytest.param(pending(), T0 + 4 * DAY, None, 0, [OverdueKind.MARK_OVERDUE], id="exactly-at-deadline"),
        pytest.param(
            pending(), T0 + 4 * DAY - timedelta(microseconds=1), None, 0, [], id="just-before-deadline"
        ),
        pytest.param(pending(), T0 + 30 * DAY, None, 0, [OverdueKind.MARK_OVERDUE], id="long-after"),
        pytest.param(pending(MessageState.OVERDUE), T0 + 30 * DAY, DAY, 3, [], id="marked-only-once"),
        pytest.param(pending(MessageState.QUEUED), T0 + 30 * DAY, DAY, 3, [], id="queued-is-not-pending"),
        pytest.param(pending(MessageState.ACKED), T0 + 30 * DAY, DAY, 3, [], id="answered"),
        pytest.param(pending(), T0 + DAY, DAY, 2, [OverdueKind.RESEND], id="resend-exactly-due"),
        pytest.param(pending(), T0 + DAY - timedelta(seconds=1), DAY, 2, [], id="resend-not-yet-due"),
        pytest.param(pending(), T0 + 3 * DAY, None, 2, [], id="resend-off"),
        pytest.param(pending(resends=2), T0 + 3 * DAY, DAY, 2, [], id="resends-used-up"),
        pytest.param(pending(), T0 + 3 * DAY, DAY, 0, [], id="no-resends-allowed"),
        pytest.param(
            pending(sent_at=T0 + 2 * DAY, resends=1),
            T0 + 3 * DAY - timedelta(hours=1),
            DAY,
            2,
            [],
            id="resend-counts-from-latest-send",
        ),
        pytest.param(
            pending(sent_at=T0 + 3 * DAY, resends=1),
            T0 + 4 * DAY,
            DAY,
            5,
            [OverdueKind.MARK_OVERDUE],
            id="deadline-counts-from-first-send",
        ),
        pytest.param(
            pending(sent_at=T0),
            T0 + 4 * DAY,
            DAY,
            5,
            [OverdueKind.MARK_OVERDUE],
            id="overdue-wins-over-resend",
        ),
    ],
)
def test_overdue_table(
    message: PendingMessage,
    now: datetime,
    resend_after: timedelta | None,
    max_resends: int,
    expected: list[OverdueKind],
) -> None:
    """A sent message is marked overdue once at its deadline and, before it, resent when configured."""
    assert sweep(message, now, resend_after=resend_after, max_resends=max_resends) == expected


def test_actions_keep_the_input_order_and_say_why() -> None:
    """The sweep answers in the order of the messages it was given, with a reason per action."""
    messages = [
        PendingMessage("late", MessageState.SENT, sent_at=T0, first_sent_at=T0),
        PendingMessage("fresh", MessageState.SENT, sent_at=T0 + 4 * DAY, first_sent_at=T0 + 4 * DAY),
        PendingMessage("waiting", MessageState.SENT, sent_at=T0 + 3 * DAY, first_sent_at=T0 + 3 * DAY),
    ]
    actions = overdue_actions(
        messages,
        now=T0 + 4 * DAY,
        deadline=STANDARD_ACK_DEADLINE,
        resend_after=timedelta(hours=12),
        max_resends=1,
    )
    assert actions == [
        OverdueAction("late", OverdueKind.MARK_OVERDUE, "no AppRec within 96 h of the first send"),
        OverdueAction("waiting", OverdueKind.RESEND, "no AppRec 12 h after the latest send; resend 1 of 1"),
    ]


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        ({"now": datetime(2026, 3, 2, 8, 0)}, "timezone-aware"),
        ({"deadline": timedelta(0)}, "deadline"),
        ({"resend_after": timedelta(hours=-1)}, "resend_after"),
        ({"max_resends": -1}, "max_resends"),
    ],
)
def test_sweep_refuses_bad_arguments(arguments: dict[str, Any], match: str) -> None:
    """A naive clock, a non-positive deadline or resend interval is a configuration error, not a no-op."""
    defaults: dict[str, Any] = {"now": T0, "deadline": DAY, "resend_after": None, "max_resends": 0}
    with pytest.raises(ValueError, match=match):
        overdue_actions([pending()], **{**defaults, **arguments})


def run_sweeps(
    *, deadline: timedelta, resend_after: timedelta | None, max_resends: int, tick: timedelta, ticks: int
) -> list[tuple[datetime, OverdueKind]]:
    """Sweep one message every ``tick`` and apply each action as the service would; return what happened."""
    message = pending()
    happened = []
    for i in range(1, ticks + 1):
        now = T0 + i * tick
        for action in overdue_actions(
            [message], now=now, deadline=deadline, resend_after=resend_after, max_resends=max_resends
        ):
            happened.append((now, action.kind))
            if action.kind == OverdueKind.RESEND:
                message = dataclasses.replace(message, sent_at=now, resends=message.resends + 1)
            else:
                message = dataclasses.replace(message, state=MessageState.OVERDUE)
    return happened


def test_resends_are_counted_until_the_deadline() -> None:
    """With resend every 24 h, at most two, a silent receiver gets two resends and then one overdue mark."""
    happened = run_sweeps(
        deadline=STANDARD_ACK_DEADLINE,
        resend_after=DAY,
        max_resends=2,
        tick=timedelta(hours=1),
        ticks=24 * 10,
    )
    assert happened == [
        (T0 + DAY, OverdueKind.RESEND),
        (T0 + 2 * DAY, OverdueKind.RESEND),
        (T0 + 4 * DAY, OverdueKind.MARK_OVERDUE),
    ]


@given(
    deadline_h=st.integers(min_value=1, max_value=200),
    resend_h=st.none() | st.integers(min_value=1, max_value=200),
    max_resends=st.integers(min_value=0, max_value=5),
    tick_h=st.integers(min_value=1, max_value=30),
)
def test_sweeps_mark_once_and_never_overspend_resends(
    deadline_h: int, resend_h: int | None, max_resends: int, tick_h: int
) -> None:
    """However often the sweep runs, a message is marked overdue once, at its deadline, after few resends."""
    deadline = timedelta(hours=deadline_h)
    happened = run_sweeps(
        deadline=deadline,
        resend_after=None if resend_h is None else timedelta(hours=resend_h),
        max_resends=max_resends,
        tick=timedelta(hours=tick_h),
        ticks=(deadline_h // tick_h) + 3,
    )
    marks = [at for at, kind in happened if kind == OverdueKind.MARK_OVERDUE]
    resends = [at for at, kind in happened if kind == OverdueKind.RESEND]
    assert (
        len(marks) == 1 and marks[0] >= T0 + deadline and marks[0] - T0 - deadline < timedelta(hours=tick_h)
    )
    assert len(resends) <= max_resends and all(at < marks[0] for at in resends)
    assert resend_h is not None or not resends


@pytest.mark.parametrize(
    ("resend_after", "max_resends", "cutoff"),
    [
        pytest.param(None, 0, T0 - 4 * DAY, id="deadline-only"),
        pytest.param(DAY, 2, T0 - DAY, id="resend-sooner"),
        pytest.param(DAY, 0, T0 - 4 * DAY, id="resend-with-none-allowed"),
        pytest.param(10 * DAY, 2, T0 - 4 * DAY, id="deadline-sooner"),
    ],
)
def test_sweep_cutoff_is_the_sooner_of_deadline_and_resend(
    resend_after: timedelta | None, max_resends: int, cutoff: datetime
) -> None:
    """The sweep reads messages first sent by now minus the deadline, or the resend time when sooner."""
    assert (
        sweep_cutoff(T0, deadline=STANDARD_ACK_DEADLINE, resend_after=resend_after, max_resends=max_resends)
        == cutoff
    )


@given(
    deadline_h=st.integers(min_value=1, max_value=200),
    resend_h=st.none() | st.integers(min_value=1, max_value=200),
    max_resends=st.integers(min_value=0, max_value=3),
    first_after_cutoff_s=st.integers(min_value=1, max_value=400 * 3600),
    resent_s=st.integers(min_value=0, max_value=400 * 3600),
    resends=st.integers(min_value=0, max_value=3),
)
def test_nothing_first_sent_after_the_cutoff_is_due(
    deadline_h: int,
    resend_h: int | None,
    max_resends: int,
    first_after_cutoff_s: int,
    resent_s: int,
    resends: int,
) -> None:
    """A message first sent after the cutoff gets no action, whatever its resends: the sweep may skip it."""
    deadline = timedelta(hours=deadline_h)
    resend_after = None if resend_h is None else timedelta(hours=resend_h)
    now = T0 + 30 * DAY
    cutoff = sweep_cutoff(now, deadline=deadline, resend_after=resend_after, max_resends=max_resends)
    first = cutoff + timedelta(seconds=first_after_cutoff_s)
    message = pending(sent_at=first + timedelta(seconds=resent_s), first=first, resends=resends)
    assert (
        overdue_actions(
            [message], now=now, deadline=deadline, resend_after=resend_after, max_resends=max_resends
        )
        == []
    )


# --- Quiet receivers ---------------------------------------------------------------------------


def test_receiver_goes_quiet_once_and_recovers_once() -> None:
    """The third overdue message in a row raises one quiet alert, later ones none; an AppRec recovers."""
    health = ReceiverHealth(SERVICE)
    alerts = []
    for event in ["overdue"] * 5 + ["apprec", "apprec"]:
        health, alert = on_overdue(health, threshold=3) if event == "overdue" else on_apprec(health)
        alerts.append(alert.kind if alert else None)
    assert alerts == [None, None, AlertKind.RECEIVER_QUIET, None, None, AlertKind.RECEIVER_RECOVERED, None]
    assert health == ReceiverHealth(SERVICE, consecutive_overdue=0, quiet=False)


def test_an_apprec_in_between_resets_the_run() -> None:
    """Overdue messages count only in a row: an AppRec before the threshold restarts the count, silently."""
    health = ReceiverHealth(SERVICE)
    health, _ = on_overdue(health, threshold=3)
    health, _ = on_overdue(health, threshold=3)
    health, alert = on_apprec(health)
    assert alert is None and health.consecutive_overdue == 0
    health, alert = on_overdue(health, threshold=3)
    assert alert is None and health == ReceiverHealth(SERVICE, 1, False)


def test_quiet_alert_names_the_receiver_only() -> None:
    """The quiet alert carries the receiver's HER-id and a reason with the count."""
    _, alert = on_overdue(ReceiverHealth(SERVICE), threshold=1)
    assert alert is not None
    assert (alert.her_id, alert.kind) == (SERVICE, AlertKind.RECEIVER_QUIET)
    assert alert.reason == f"1 messages in a row to HER-id {SERVICE} went overdue without an AppRec"


def test_threshold_must_be_positive() -> None:
    """A threshold below one is refused."""
    with pytest.raises(ValueError, match="threshold"):
        on_overdue(ReceiverHealth(SERVICE), threshold=0)


@given(st.lists(st.booleans(), max_size=60), st.integers(min_value=1, max_value=5))
def test_alerts_alternate_starting_with_quiet(overdue_events: list[bool], threshold: int) -> None:
    """Any sequence of overdue messages and AppRecs alternates quiet and recovered alerts, quiet first."""
    health = ReceiverHealth(SERVICE)
    kinds = []
    for overdue in overdue_events:
        health, alert = on_overdue(health, threshold=threshold) if overdue else on_apprec(health)
        if alert is not None:
            assert alert.her_id == SERVICE
            kinds.append(alert.kind)
        assert health.quiet == (bool(kinds) and kinds[-1] == AlertKind.RECEIVER_QUIET)
        assert health.her_id == SERVICE
    expected = [AlertKind.RECEIVER_QUIET, AlertKind.RECEIVER_RECOVERED] * len(kinds)
    assert kinds == expected[: len(kinds)]
