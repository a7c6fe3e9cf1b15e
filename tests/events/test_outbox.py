"""Appending events: numbered 1, 2, 3 ... per subject, in the transaction of the change, and
two transactions appending to one subject at once neither share a number nor fail."""

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared import events
from shared.db import session_scope
from shared.models import Event, new_id
from tests import factories
from tests.concurrency import Racer


def numbers(subject_id: str) -> list[tuple[str, int]]:
    with session_scope() as session:
        rows = session.execute(
            select(Event.type, Event.sequence)
            .where(Event.subject_id == subject_id)
            .order_by(Event.sequence)
        )
        return [(event_type, sequence) for event_type, sequence in rows]


class TestAppend:
    def test_a_subjects_events_are_numbered_in_order_and_carry_its_data(self) -> None:
        account_id, _ = factories.account()
        call_id = new_id()
        with session_scope() as session:
            first = events.append(
                session, account_id, "call.queued", "call", call_id, {"status": "queued"}
            )
            second = events.append(
                session, account_id, "call.dialing", "call", call_id, {"status": "dialing"}
            )
        assert (first.sequence, second.sequence) == (1, 2)
        assert first.id < second.id  # sortable ids
        with session_scope() as session:
            events.append(session, account_id, "call.canceled", "call", call_id, {"status": "x"})
            stored = session.get(Event, second.id)
            assert stored is not None and stored.data == {"status": "dialing"}
        assert numbers(call_id) == [("call.queued", 1), ("call.dialing", 2), ("call.canceled", 3)]

    def test_many_at_once_number_each_subject_on_its_own(self) -> None:
        account_id, _ = factories.account()
        a, b = new_id(), new_id()
        with session_scope() as session:
            events.append(session, account_id, "call.queued", "call", a, {})
            written = events.append_many(
                session,
                [
                    events.Draft(account_id, "call.dialing", "call", a, {}),
                    events.Draft(account_id, "call.queued", "call", b, {}),
                    events.Draft(account_id, "call.canceled", "call", a, {}),
                ],
            )
        assert [event.sequence for event in written] == [2, 1, 3]
        assert numbers(a) == [("call.queued", 1), ("call.dialing", 2), ("call.canceled", 3)]

    def test_new_subjects_first_events_start_at_one_and_later_ones_follow(self) -> None:
        account_id, _ = factories.account()
        a, b = new_id(), new_id()
        with session_scope() as session:
            written = events.append_first(
                session,
                [
                    events.Draft(account_id, "call.queued", "call", a, {"id": a}),
                    events.Draft(account_id, "call.queued", "call", b, {"id": b}),
                ],
            )
        assert [event.sequence for event in written] == [1, 1]
        with session_scope() as session:
            events.append(session, account_id, "call.dialing", "call", a, {})
            stored = session.get(Event, written[1].id)
            assert stored is not None and stored.data == {"id": b}
        assert numbers(a) == [("call.queued", 1), ("call.dialing", 2)]
        assert numbers(b) == [("call.queued", 1)]

    def test_a_first_event_for_a_subject_with_events_fails_rather_than_share_a_number(
        self,
    ) -> None:
        account_id, _ = factories.account()
        subject = new_id()
        with session_scope() as session:
            events.append(session, account_id, "call.queued", "call", subject, {})
        with pytest.raises(IntegrityError), session_scope() as session:
            events.append_first(
                session, [events.Draft(account_id, "call.dialing", "call", subject, {})]
            )
        assert numbers(subject) == [("call.queued", 1)]

    def test_an_event_rolls_back_with_its_change(self) -> None:
        account_id, _ = factories.account()
        subject = new_id()
        try:
            with session_scope() as session:
                events.append(session, account_id, "sms.queued", "sms", subject, {})
                raise RuntimeError("the change failed")
        except RuntimeError:
            pass
        assert numbers(subject) == []

    def test_two_transactions_appending_to_one_subject_take_the_next_numbers(self) -> None:
        """The first transaction holds its event uncommitted; the second reads the same
        highest number, waits on the unique index, and takes the next one once the first
        commits: no 500, no shared number."""
        account_id, _ = factories.account()
        subject = new_id()
        with session_scope() as session:
            events.append(session, account_id, "batch.started", "batch", subject, {})

        def second(session: Session) -> int:
            return events.append(
                session, account_id, "batch.canceled", "batch", subject, {}
            ).sequence

        with session_scope() as first:
            held = events.append(first, account_id, "batch.paused", "batch", subject, {})
            racer = Racer(second)
            racer.wait_until_blocked()
        assert held.sequence == 2
        assert racer.join() == 3
        assert numbers(subject) == [
            ("batch.started", 1),
            ("batch.paused", 2),
            ("batch.canceled", 3),
        ]

    def test_a_second_transaction_whose_rival_rolls_back_takes_the_freed_number(self) -> None:
        account_id, _ = factories.account()
        subject = new_id()

        def second(session: Session) -> int:
            return events.append(session, account_id, "sms.sent", "sms", subject, {}).sequence

        try:
            with session_scope() as first:
                events.append(first, account_id, "sms.queued", "sms", subject, {})
                racer = Racer(second)
                racer.wait_until_blocked()
                raise RuntimeError("the first change failed")
        except RuntimeError:
            pass
        assert racer.join() == 1
        assert numbers(subject) == [("sms.sent", 1)]
