"""The SMS dispatcher's tick, as the accounts it serves see it: every account with messages owed
has its turn within a few windows, however many accounts there are and however long one
account's backlog; and two ticks at once claim no message twice, nor beyond the window."""

import threading
from collections import Counter

import pytest
from sqlalchemy import select, text, update

from shared.config import get_settings
from shared.db import get_engine, session_scope
from shared.models import SmsMessage
from shared.redis_client import get_redis
from tests import factories
from tests.api.conftest import KeyedClient
from tests.stack import wait_until


def _tick() -> int:
    """One tick of the SMS dispatcher, as beat's wake-up runs it."""
    from workers.tasks import sms as sms_tasks

    return sms_tasks.dispatch()


@pytest.fixture(autouse=True)
def only_these_owed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Messages other tests left queued (no worker runs here) would take turns too."""
    monkeypatch.setattr(get_settings(), "DISPATCH_WINDOW", 4)
    with session_scope() as session:
        session.execute(
            update(SmsMessage)
            .where(SmsMessage.status.in_(("queued", "sending")), SmsMessage.twilio_sid.is_(None))
            .values(status="failed")
        )


def _account_with_sms(api: KeyedClient, count: int) -> KeyedClient:
    account_id, key = factories.account(credits=1000)
    customer = KeyedClient(api.client, account_id, key)
    for _ in range(count):
        sent = customer.post(
            "/api/send_sms", json={"phoneNumber": factories.phone_number(), "message": "Hi"}
        )
        assert sent.status_code == 200, sent.text
    return customer


def _sent(customers: list[KeyedClient]) -> list[str]:
    """The messages the tick claimed go to Twilio, as workers would send them: the window is
    free again. Returns the account of each."""
    with session_scope() as session:
        sent = session.execute(
            update(SmsMessage)
            .where(
                SmsMessage.account_id.in_([customer.account_id for customer in customers]),
                SmsMessage.status == "sending",
            )
            .values(status="sent", twilio_sid="SM" + SmsMessage.id)
            .returning(SmsMessage.account_id)
        )
        return list(sent.scalars())


def _sending(customers: list[KeyedClient]) -> int:
    with session_scope() as session:
        return len(
            session.scalars(
                select(SmsMessage.id).where(
                    SmsMessage.account_id.in_([customer.account_id for customer in customers]),
                    SmsMessage.status == "sending",
                )
            ).all()
        )


class TestTurns:
    def test_every_account_is_served_within_a_few_windows_behind_a_backlog(
        self, api: KeyedClient
    ) -> None:
        backlog = _account_with_sms(api, 20)
        others = [_account_with_sms(api, 1) for _ in range(8)]
        served: Counter[str] = Counter()
        # Nine accounts, four messages a window: each has had its turn after three.
        for _ in range(3):
            assert _tick() == 4
            served.update(_sent([backlog, *others]))
        waiting = [c.account_id for c in others if c.account_id not in served]
        assert not waiting, f"{len(waiting)} accounts' messages wait behind one account's backlog"
        assert served[backlog.account_id] <= 4


class TestTwoTicksAtOnce:
    @pytest.mark.parametrize("guard_lost", [False, True], ids=["guarded", "guard lost"])
    def test_no_message_is_claimed_twice_and_the_window_holds(
        self, api: KeyedClient, guard_lost: bool
    ) -> None:
        customers = [_account_with_sms(api, 4) for _ in range(2)]
        with session_scope() as session:
            oldest = session.scalars(
                select(SmsMessage.id)
                .where(SmsMessage.account_id.in_([c.account_id for c in customers]))
                .order_by(SmsMessage.created_at)
            ).first()
        results: list[object] = []

        def tick() -> None:
            try:
                results.append(_tick())
            except Exception as exc:
                results.append(exc)

        ticks = [threading.Thread(target=tick) for _ in range(2)]
        with get_engine().connect() as holder:
            # The first tick's claim waits for a message's row (a callback, the retention purge).
            holder.execute(select(SmsMessage.id).where(SmsMessage.id == oldest).with_for_update())
            ticks[0].start()
            wait_until(lambda: _waiting_for_locks() == 1, 20, message="the first tick waits")
            if guard_lost:  # Redis restarted empty, or the tick outlived the guard's expiry
                get_redis().delete("toingg:sms:dispatch")
            ticks[1].start()
            if guard_lost:
                wait_until(lambda: _waiting_for_locks() == 2, 20, message="the second waits")
            else:
                ticks[1].join(timeout=20)
            holder.rollback()
        for thread in ticks:
            thread.join(timeout=60)
        assert _sending(customers) == 4, "claims out with workers beyond the window of 4"
        assert all(isinstance(result, int) for result in results), results
        assert sum(results) == 4, results  # type: ignore[arg-type]


def _waiting_for_locks() -> int:
    with get_engine().connect() as connection:
        return int(
            connection.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
            or 0
        )
