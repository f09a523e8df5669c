"""The pilot report's counts on both databases: JA/NEI, kommune messages sent and acknowledged, points.

Requests and messages go in through the store's own API; pathways and their points straight into
their tables (the pathway store is written elsewhere). ``fill_pilot`` stores a small, fixed history
that the service, CLI and web tests reuse.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa

from edi_gateway.domain.apprec import AppRecStatus
from edi_gateway.domain.states import MessageState, RequestState
from edi_gateway.localtime import LOCAL_ZONE
from edi_gateway.store import RequestOutcome, Store, Transition
from edi_gateway.store.operators import NewReplay
from edi_gateway.store.pilot import MAX_PERIODS, PilotCount, period_bounds
from edi_gateway.store.tables import pathway_points, pathways
from tests.store.conftest import FASTLEGE, LEGEKONTOR, Builder, FakeClock

ACTOR = "worker:test"
PORSGRUNN, SKIEN = "4001", "4003"
# The period of the fixed history: 15 October to 10 December 2024, Norwegian time (winter time from
# 27 October: 1 November 00:00 in Norway is 31 October 23:00 UTC).
SINCE = datetime(2024, 10, 15, tzinfo=LOCAL_ZONE)
UNTIL = datetime(2024, 12, 10, tzinfo=LOCAL_ZONE)
NOVEMBER = datetime(2024, 11, 1, tzinfo=LOCAL_ZONE)
DECEMBER = datetime(2024, 12, 1, tzinfo=LOCAL_ZONE)
OCT_20 = datetime(2024, 10, 20, 12, tzinfo=UTC)
NOV_10 = datetime(2024, 11, 10, 12, tzinfo=UTC)
DEC_5 = datetime(2024, 12, 5, 12, tzinfo=UTC)


@dataclass
class Pilot:
    """A store with the builders and an engine for the pathway tables."""

    store: Store
    build: Builder
    clock: FakeClock
    engine: sa.Engine

    def request(self, at: datetime, kommunenummer: str | None, consent: bool | None, *messages: str) -> str:
        """Store a request received at ``at`` with messages of the given kinds; return their MsgIds."""
        self.clock.now = at
        state = RequestState.ROUTED if messages else RequestState.NO_CONSENT
        request = dataclasses.replace(self.build.request(state), kommunenummer=kommunenummer, consent=consent)
        built = tuple(
            dataclasses.replace(
                self.build.message(kind="fastlege", org=LEGEKONTOR, her_id=FASTLEGE)
                if kind == "fastlege"
                else self.build.message(),
                kommunenummer=kommunenummer,
            )
            for kind in messages
        )
        self.store.save_outcomes([RequestOutcome(request, built)], actor=ACTOR)
        return " ".join(m.msg_id for m in built)

    def sent(self, at: datetime, kommunenummer: str, *kinds: str, answer: AppRecStatus | None = None) -> str:
        """A request with a message per kind (default: one to the kommune) first sent at ``at``.

        With ``answer`` each message gets an AppRec of that status an hour later. Returns the MsgIds.
        """
        msg_ids = self.request(at - timedelta(minutes=5), kommunenummer, True, *(kinds or ("kommune",)))
        self.clock.now = at
        self.store.transition_messages(
            [Transition(m, MessageState.SENT, "confirmed") for m in msg_ids.split()], actor=ACTOR
        )
        if answer is not None:
            for msg_id in msg_ids.split():
                self.answer(msg_id, answer, at + timedelta(hours=1))
        return msg_ids

    def answer(self, msg_id: str, status: AppRecStatus, at: datetime) -> None:
        """Record an AppRec of ``status`` for ``msg_id`` at ``at`` and move the message as it says."""
        self.clock.now = at
        state = {
            AppRecStatus.OK: MessageState.ACKED,
            AppRecStatus.AVVIST: MessageState.REJECTED_BY_RECEIVER,
        }.get(status, MessageState.ACKED_WITH_ERRORS)
        self.store.save_acknowledgements(
            apprecs=[self.build.apprec(msg_id, status=status)],
            parked=[],
            transitions=[Transition(msg_id, state, f"AppRec status {int(status)}")],
            health=[],
            actor=ACTOR,
        )

    def pathway(self, kommunenummer: str | None, *points: tuple[str, datetime, date | None]) -> int:
        """A pathway in ``kommunenummer`` with points given as (state, changed_at, due_to)."""
        now = datetime(2024, 9, 1, tzinfo=UTC)
        with self.engine.begin() as conn:
            pathway_id = conn.execute(
                pathways.insert().returning(pathways.c.id),
                {
                    "patient_ref": uuid.uuid4().hex,
                    "patient_masked": "010180*****",
                    "receiver_her_id": 8100005,
                    "kommunenummer": kommunenummer,
                    "model_name": "telemark",
                    "source_msg_id": str(uuid.uuid4()),
                    "opened_at": now,
                    "updated_at": now,
                    "version": 1,
                    "document": {},
                },
            ).scalar_one()
            for number, (state, changed_at, due_to) in enumerate(points, start=1):
                conn.execute(
                    pathway_points.insert(),
                    {
                        "pathway_id": pathway_id,
                        "course": 1,
                        "number": number,
                        "title": f"Samhandlingspunkt {number}",
                        "performer": "kommune",
                        "due_from": (due_to or date(2024, 9, 1)) - timedelta(days=30),
                        "due_to": due_to,
                        "state": state,
                        "changed_at": changed_at,
                    },
                )
        return int(pathway_id)


@pytest.fixture
def pilot(store: Store, build: Builder, clock: FakeClock, database_url: str) -> Iterator[Pilot]:
    """The migrated store, its builders, and an engine on the same database for the pathway tables."""
    engine = sa.create_engine(database_url)
    try:
        yield Pilot(store, build, clock, engine)
    finally:
        engine.dispose()


def fill_pilot(p: Pilot) -> None:
    """Store the fixed history: JA, NEI, messages and points in October, November and December 2024.

    Porsgrunn (4001): JA 3 (Oct, Nov, Dec), NEI 1 (Nov); kommune messages sent Oct (acked), Nov
    (acked with errors, and its fastlege copy: not counted), Dec (rejected by the receiver).
    Skien (4003): NEI 1 (Oct); a request without a kommune: NEI 1 (Nov). Points: Porsgrunn done in
    Nov, declined in Dec, overdue since Oct; Skien not reachable in Oct, overdue after a window that
    ended 30 Nov. Outside the period: a JA and a sent message before it, a JA at its very end.
    """
    p.sent(OCT_20, PORSGRUNN, answer=AppRecStatus.OK)
    p.sent(NOV_10, PORSGRUNN, "kommune", "fastlege", answer=AppRecStatus.OK_FEIL_I_DELMELDING)
    p.sent(DEC_5, PORSGRUNN, answer=AppRecStatus.AVVIST)
    p.request(NOV_10, PORSGRUNN, False)
    p.request(OCT_20, SKIEN, False)
    p.request(NOV_10, None, False)
    p.sent(SINCE - timedelta(days=3), PORSGRUNN, answer=AppRecStatus.OK)  # out: before the period
    p.request(UNTIL, PORSGRUNN, True, "kommune")  # out: the end is excluded
    p.pathway(
        PORSGRUNN,
        ("done", NOV_10, date(2024, 12, 31)),
        ("declined", DEC_5, date(2025, 3, 1)),
        ("overdue", OCT_20, date(2024, 10, 1)),
    )
    p.pathway(SKIEN, ("not_reachable", OCT_20, None), ("overdue", DEC_5, date(2024, 11, 30)))


def test_an_empty_store_counts_nothing(pilot: Pilot) -> None:
    """With nothing stored the report has no rows."""
    assert pilot.store.pilot_counts(since=SINCE, until=UNTIL) == []


def test_the_whole_period_gives_one_row_per_kommune_with_exact_counts(pilot: Pilot) -> None:
    """Over the whole period every count is exact: rows outside it and fastlege messages are left out."""
    fill_pilot(pilot)
    found = pilot.store.pilot_counts(since=SINCE, until=UNTIL)
    start, end = SINCE.astimezone(UTC), UNTIL.astimezone(UTC)
    assert found == [
        PilotCount(
            PORSGRUNN,
            start,
            end,
            ja=3,
            nei=1,
            sent=3,
            sent_requests=3,
            acknowledged=2,
            points_done=1,
            points_declined=1,
            points_overdue=1,
        ),
        PilotCount(SKIEN, start, end, nei=1, points_not_reachable=1, points_overdue=1),
        PilotCount(None, start, end, nei=1),
    ]


def test_requests_count_by_arrival_and_consent_unknown_is_neither(pilot: Pilot) -> None:
    """JA and NEI count requests received in [since, until); a request without consent counts in neither."""
    p = pilot
    p.request(SINCE - timedelta(seconds=1), PORSGRUNN, True)
    p.request(SINCE, PORSGRUNN, True)
    p.request(UNTIL - timedelta(seconds=1), PORSGRUNN, False)
    p.request(UNTIL, PORSGRUNN, False)
    p.request(NOV_10, PORSGRUNN, None)
    (row,) = p.store.pilot_counts(since=SINCE, until=UNTIL)
    assert (row.kommunenummer, row.ja, row.nei, row.sent) == (PORSGRUNN, 1, 1, 0)


def test_sent_counts_kommune_messages_by_first_send_and_their_requests(pilot: Pilot) -> None:
    """Messages count by their first send, kommune receivers only; a request whose kommune message was
    rebuilt counts twice in sent and once in sent_requests; a message never sent counts nowhere."""
    p = pilot
    kommune, fastlege = p.request(NOV_10, PORSGRUNN, True, "kommune", "fastlege").split()
    p.clock.now = NOV_10 + timedelta(minutes=1)
    p.store.transition_messages(
        [Transition(m, MessageState.SENT, "confirmed") for m in (kommune, fastlege)], actor=ACTOR
    )
    rebuilt = dataclasses.replace(p.build.message(conversation_ref=kommune), kommunenummer=PORSGRUNN)
    p.store.add_replay_message(
        NewReplay(kommune, rebuilt, username="operator", kind="rebuild", reason="test"), actor=ACTOR
    )
    p.clock.now = NOV_10 + timedelta(minutes=2)
    p.store.transition_messages([Transition(rebuilt.msg_id, MessageState.SENT, "confirmed")], actor=ACTOR)
    p.request(NOV_10, PORSGRUNN, True, "kommune")  # built but never sent
    (row,) = p.store.pilot_counts(since=SINCE, until=UNTIL)
    assert (row.ja, row.sent, row.sent_requests, row.acknowledged) == (2, 2, 1, 0)


def test_acknowledged_counts_ok_and_ok_with_errors_of_messages_sent_in_the_period(pilot: Pilot) -> None:
    """AppRec OK and OK-with-errors acknowledge; Avvist does not; a message sent before since is not
    counted even when its AppRec comes in the period."""
    p = pilot
    for status in (AppRecStatus.OK, AppRecStatus.OK_FEIL_I_DELMELDING, AppRecStatus.AVVIST, None):
        p.sent(NOV_10, SKIEN, answer=status)
    early = p.sent(SINCE - timedelta(hours=2), SKIEN)
    p.answer(early, AppRecStatus.OK, NOV_10)
    (row,) = p.store.pilot_counts(since=SINCE, until=UNTIL)
    assert (row.kommunenummer, row.ja, row.sent, row.acknowledged) == (SKIEN, 4, 4, 2)


def test_points_count_by_state_reached_in_the_period_and_the_pathway_s_kommune(pilot: Pilot) -> None:
    """done, declined and not_reachable count when changed_at is in the period; other states never."""
    p = pilot
    p.pathway(
        PORSGRUNN,
        ("done", SINCE, None),
        ("done", UNTIL, None),
        ("declined", UNTIL - timedelta(seconds=1), None),
        ("not_reachable", SINCE - timedelta(seconds=1), None),
        ("due", NOV_10, None),
        ("closed", NOV_10, None),
    )
    p.pathway(SKIEN, ("not_reachable", NOV_10, None), ("done", NOV_10, None), ("planned", NOV_10, None))
    found = {
        c.kommunenummer: (c.points_done, c.points_declined, c.points_not_reachable)
        for c in p.store.pilot_counts(since=SINCE, until=UNTIL)
    }
    assert found == {PORSGRUNN: (1, 1, 0), SKIEN: (1, 0, 1)}


def test_overdue_counts_points_overdue_now_whose_window_ended_before_until(pilot: Pilot) -> None:
    """An overdue point counts when its last day is before until's Norwegian day, however long ago;
    a window still open on until's day, or a point in another state, does not count."""
    p = pilot
    last_day = UNTIL.date()  # 10 December: the period ends at its first moment
    p.pathway(
        PORSGRUNN,
        ("overdue", OCT_20, date(2023, 1, 1)),
        ("overdue", OCT_20, last_day - timedelta(days=1)),
        ("overdue", OCT_20, last_day),
        ("due", OCT_20, date(2024, 10, 1)),
        ("done", SINCE - timedelta(days=1), date(2024, 10, 1)),
    )
    (row,) = p.store.pilot_counts(since=SINCE, until=UNTIL)
    assert (row.kommunenummer, row.points_overdue, row.points_done) == (PORSGRUNN, 2, 0)
    noon = UNTIL + timedelta(hours=12)  # until at noon: 10 December has not ended yet
    (row,) = p.store.pilot_counts(since=SINCE, until=noon)
    assert row.points_overdue == 2


def test_by_month_gives_a_row_per_kommune_per_norwegian_month(pilot: Pilot) -> None:
    """--by month cuts at 1 November and 1 December Norwegian time; overdue accumulates month by month."""
    fill_pilot(pilot)
    found = pilot.store.pilot_counts(since=SINCE, until=UNTIL, by_month=True)
    oct_, nov, dec = (
        (SINCE.astimezone(UTC), NOVEMBER.astimezone(UTC)),
        (NOVEMBER.astimezone(UTC), DECEMBER.astimezone(UTC)),
        (DECEMBER.astimezone(UTC), UNTIL.astimezone(UTC)),
    )
    assert found == [
        PilotCount(PORSGRUNN, *oct_, ja=1, sent=1, sent_requests=1, acknowledged=1, points_overdue=1),
        PilotCount(SKIEN, *oct_, nei=1, points_not_reachable=1),
        PilotCount(
            PORSGRUNN,
            *nov,
            ja=1,
            nei=1,
            sent=1,
            sent_requests=1,
            acknowledged=1,
            points_done=1,
            points_overdue=1,
        ),
        PilotCount(SKIEN, *nov, points_overdue=1),  # its window's last day, 30 November, is in November
        PilotCount(None, *nov, nei=1),
        PilotCount(PORSGRUNN, *dec, ja=1, sent=1, sent_requests=1, points_declined=1, points_overdue=1),
        PilotCount(SKIEN, *dec, points_overdue=1),
    ]


def test_a_month_starts_at_midnight_in_norway_not_in_utc(pilot: Pilot) -> None:
    """A request at 23:30 UTC on 31 October is in November (00:30 in Norway); one at 22:30 UTC in October."""
    p = pilot
    p.request(datetime(2024, 10, 31, 22, 30, tzinfo=UTC), PORSGRUNN, True)
    p.request(datetime(2024, 10, 31, 23, 30, tzinfo=UTC), PORSGRUNN, False)
    found = p.store.pilot_counts(since=SINCE, until=UNTIL, by_month=True)
    assert [(c.period_start.astimezone(LOCAL_ZONE).month, c.ja, c.nei) for c in found] == [
        (10, 1, 0),
        (11, 0, 1),
    ]


def test_period_bounds_cut_at_norwegian_month_starts() -> None:
    """The bounds are since, every month start in Norway strictly inside, and until, all in UTC."""
    assert period_bounds(SINCE, UNTIL) == [SINCE.astimezone(UTC), UNTIL.astimezone(UTC)]
    bounds = period_bounds(SINCE, UNTIL, by_month=True)
    assert bounds == [b.astimezone(UTC) for b in (SINCE, NOVEMBER, DECEMBER, UNTIL)]
    assert all(b.tzinfo is UTC for b in bounds)
    whole = period_bounds(NOVEMBER, DECEMBER, by_month=True)  # a whole month is one period
    assert whole == [NOVEMBER.astimezone(UTC), DECEMBER.astimezone(UTC)]
    year_end = period_bounds(
        datetime(2024, 12, 20, tzinfo=UTC), datetime(2025, 2, 2, tzinfo=UTC), by_month=True
    )
    assert [b.astimezone(LOCAL_ZONE).date() for b in year_end[1:-1]] == [date(2025, 1, 1), date(2025, 2, 1)]


@pytest.mark.parametrize(
    ("since", "until", "message"),
    [
        (UNTIL, SINCE, "until must not be before since"),
        (datetime(2024, 11, 1), UNTIL, "since must be timezone-aware"),
        (datetime(1900, 1, 1, tzinfo=UTC), UNTIL, f"at most {MAX_PERIODS} periods"),
    ],
)
def test_bad_periods_are_refused(since: datetime, until: datetime, message: str) -> None:
    """A reversed period, a naive time and an endless month split raise ValueError."""
    with pytest.raises(ValueError, match=message):
        period_bounds(since, until, by_month=True)
