"""The dispatcher's tick, as the accounts it serves see it: each account with calls owed has its
turn within a few windows however many accounts there are, and each account's share is claimed
in a transaction of its own."""

import itertools
import threading
from collections import Counter
from datetime import datetime

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from shared.billing import ledger
from shared.calls import dispatcher, repository
from shared.calls import service as calls_service
from shared.config import get_settings
from shared.db import get_engine, get_sessionmaker, session_scope
from shared.models import Account, Call, CreditEntry, DispatchTurn, utcnow
from shared.redis_client import get_redis
from tests import factories
from tests.api.conftest import KeyedClient
from tests.concurrency import Racer
from tests.stack import wait_until


def _tick() -> int:
    """One tick of the dispatcher, as beat's wake-up runs it."""
    from workers.tasks import calls as call_tasks

    return call_tasks.dispatch()


@pytest.fixture(autouse=True)
def only_these_calls_owed() -> None:
    """Calls other tests left queued (no worker runs here) would take turns too, and their
    claims no worker took would hold the window."""
    with session_scope() as session:
        session.execute(
            update(Call)
            .where(Call.status.in_(("queued", "dialing")), Call.twilio_sid.is_(None))
            .values(status="canceled")
        )


def _account_with_batch(api: KeyedClient, numbers: int) -> KeyedClient:
    account_id, key = factories.account(credits=1000)
    factories.campaign(account_id, name="welcome")
    customer = KeyedClient(api.client, account_id, key)
    rows = [{"clientNumber": factories.phone_number()} for _ in range(numbers)]
    response = customer.post(
        "/api/make_batch_toingg", json={"campaign": "welcome", "numberList": rows}
    )
    assert response.status_code == 200, response.text
    return customer


def _placed(account_ids: list[str]) -> list[str]:
    """The calls the tick claimed go to Twilio, as workers would send them: the window is
    free again. Returns the account of each."""
    with session_scope() as session:
        placed = session.execute(
            update(Call)
            .where(Call.account_id.in_(account_ids), Call.status == "dialing")
            .values(status="initiated", twilio_sid="CA" + Call.id)
            .returning(Call.account_id)
        )
        return list(placed.scalars())


def _blocked_by(holder_pid: int) -> int:
    with get_engine().connect() as connection:
        return int(
            connection.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))"
                ),
                {"pid": holder_pid},
            )
            or 0
        )


def _status(customer: KeyedClient) -> Counter[str]:
    return Counter(call["status"] for call in customer.get("/api/calls").json()["items"])


class TestTurns:
    def test_every_account_with_calls_owed_is_served_within_a_few_windows(
        self, api: KeyedClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(get_settings(), "DISPATCH_WINDOW", 4)
        customers = [_account_with_batch(api, numbers=5) for _ in range(12)]
        accounts = [customer.account_id for customer in customers]
        served: Counter[str] = Counter()
        # Twelve accounts, four calls a window: each has had its turn after three.
        for _ in range(3):
            assert _tick() == 4
            served.update(_placed(accounts))
        assert sorted(served) == sorted(accounts), f"{12 - len(served)} accounts got no call"
        assert set(served.values()) == {1}

    def test_an_accounts_batch_and_its_single_calls_take_turns(
        self, api: KeyedClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(get_settings(), "DISPATCH_WINDOW", 1)
        customer = _account_with_batch(api, numbers=5)
        for _ in range(2):
            placed = customer.post(
                "/api/make_toingg",
                json={"campaign": "welcome", "name": "x", "phoneNumber": factories.phone_number()},
            )
            assert placed.status_code == 200, placed.text
        kinds = []
        for _ in range(4):
            assert _tick() == 1
            with session_scope() as session:
                [batch_id] = session.scalars(
                    select(Call.batch_id).where(
                        Call.account_id == customer.account_id, Call.status == "dialing"
                    )
                )
            kinds.append("batch" if batch_id else "single")
            _placed([customer.account_id])
        assert all(one != next_one for one, next_one in itertools.pairwise(kinds)), kinds


class TestOneTransactionPerAccount:
    def test_an_account_whose_row_is_held_is_skipped_and_the_others_are_claimed(
        self, api: KeyedClient
    ) -> None:
        customers = [_account_with_batch(api, numbers=2) for _ in range(3)]
        held = customers[1]
        handed: list[int] = []
        with get_engine().connect() as holder:
            holder.execute(
                select(Account.id).where(Account.id == held.account_id).with_for_update()
            )
            # The held account's claim gives up after the lock timeout; the tick goes on.
            ticking = threading.Thread(target=lambda: handed.append(_tick()))
            ticking.start()
            ticking.join(timeout=20)
            holder.rollback()
        ticking.join(timeout=30)
        assert handed == [4], "the tick waited for the held account"
        for customer in customers:
            expected = {"queued": 2} if customer is held else {"dialing": 2}
            assert _status(customer) == expected
        assert _tick() == 2
        assert _status(held) == {"dialing": 2}

    def test_an_accounts_row_is_not_locked_while_the_next_account_is_claimed(
        self, api: KeyedClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(dispatcher, "LOCK_TIMEOUT_SECONDS", 60, raising=False)
        # Neither served before: their turns come in the order of their ids.
        first, second = sorted(
            (_account_with_batch(api, numbers=1) for _ in range(2)),
            key=lambda customer: customer.account_id,
        )
        with get_engine().connect() as holder:
            holder_pid = holder.scalar(text("SELECT pg_backend_pid()"))
            holder.execute(
                select(Account.id).where(Account.id == second.account_id).with_for_update()
            )
            handed: list[int] = []
            ticking = threading.Thread(target=lambda: handed.append(_tick()))
            ticking.start()
            wait_until(lambda: _blocked_by(holder_pid) == 1, 20, message="the tick waits")
            # Meanwhile the first account's claim is committed, and its row is free.
            assert _status(first) == {"dialing": 1}
            with session_scope() as session:
                session.execute(
                    text("SELECT id FROM accounts WHERE id = :id FOR UPDATE NOWAIT"),
                    {"id": first.account_id},
                )
            holder.rollback()
        ticking.join(timeout=30)
        assert handed == [2]
        assert _status(second) == {"dialing": 1}


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


def _reservations(account_ids: list[str]) -> Counter[str]:
    with session_scope() as session:
        return Counter(
            session.scalars(
                select(CreditEntry.subject_id).where(
                    CreditEntry.account_id.in_(account_ids),
                    CreditEntry.reason == "call_reservation",
                )
            )
        )


class TestTwoTicksAtOnce:
    """Beat's tick and a wake-up (a call accepted, a batch resumed) at the same moment. One runs
    and the other does nothing while the guard in Redis holds; without it (Redis restarted
    empty, or a tick that outlived the guard's expiry) both claim, and still no call is claimed
    twice and no more than the window is out with workers."""

    def _ticks(
        self, api: KeyedClient, monkeypatch: pytest.MonkeyPatch, guard_lost: bool
    ) -> tuple[list[KeyedClient], list[object]]:
        """The first tick claims the first account's share, then is held at the second's claim
        while the second tick runs; then both go on."""
        monkeypatch.setattr(get_settings(), "DISPATCH_WINDOW", 4)
        monkeypatch.setattr(dispatcher, "LOCK_TIMEOUT_SECONDS", 60, raising=False)
        # Neither served before: their turns come in the order of their ids.
        customers = sorted(
            (_account_with_batch(api, numbers=4) for _ in range(2)),
            key=lambda customer: customer.account_id,
        )
        results: list[object] = []

        def tick() -> None:
            try:
                results.append(_tick())
            except Exception as exc:
                results.append(exc)

        ticks = [threading.Thread(target=tick) for _ in range(2)]
        with get_engine().connect() as holder:
            holder.execute(
                select(Account.id).where(Account.id == customers[1].account_id).with_for_update()
            )
            ticks[0].start()
            wait_until(lambda: _waiting_for_locks() == 1, 20, message="the first tick waits")
            if guard_lost:
                get_redis().delete("toingg:calls:dispatch")
            ticks[1].start()
            if guard_lost:
                wait_until(lambda: _waiting_for_locks() == 2, 20, message="the second waits")
            else:
                ticks[1].join(timeout=20)
            holder.rollback()
        for thread in ticks:
            thread.join(timeout=120)
        return customers, results

    @pytest.mark.parametrize("guard_lost", [False, True], ids=["guarded", "guard lost"])
    def test_no_call_is_claimed_twice_and_the_window_holds(
        self, api: KeyedClient, monkeypatch: pytest.MonkeyPatch, guard_lost: bool
    ) -> None:
        customers, results = self._ticks(api, monkeypatch, guard_lost)
        dialing = sum(_status(customer)["dialing"] for customer in customers)
        assert dialing == 4, f"{dialing} claims out with workers, the window is 4"
        claims = _reservations([customer.account_id for customer in customers])
        assert set(claims.values()) == {1}
        assert all(isinstance(result, int) for result in results), results
        if not guard_lost:
            assert sorted(results) == [0, 4]  # type: ignore[type-var]


class TestTurnsNotedAtOnce:
    def test_neither_fails_and_each_group_keeps_one_turn_the_later(self, api: KeyedClient) -> None:
        # A group's first turn noted by two transactions at once: the second waits for the
        # first's row, then moves it on (its single calls' group is the one without a batch).
        customer = _account_with_batch(api, numbers=1)
        with session_scope() as session:
            [batch_id] = session.scalars(
                select(Call.batch_id).where(Call.account_id == customer.account_id)
            )
        groups: set[str | None] = {None, batch_id}

        def note(session: Session) -> None:
            repository.note_served(session, customer.account_id, groups)

        def turns(session: Session) -> dict[str | None, datetime]:
            rows = session.execute(
                select(DispatchTurn.batch_id, DispatchTurn.served_at).where(
                    DispatchTurn.account_id == customer.account_id
                )
            )
            return {batch: served_at for batch, served_at in rows}

        held = get_sessionmaker()()
        try:
            note(held)
            first = turns(held)
            noting = Racer(note)
            noting.wait_until_blocked()
            held.commit()
        finally:
            held.close()
        noting.join()
        with session_scope() as session:
            last = turns(session)
        assert set(last) == groups
        assert all(last[group] > first[group] for group in groups)


class TestSettlementMeanwhile:
    def test_an_accounts_settlement_under_way_does_not_cost_it_its_turn(
        self, api: KeyedClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        customer = _account_with_batch(api, numbers=1)
        assert _tick() == 1
        # Its call ended: what it did not use waits for the settler.
        with session_scope() as session:
            session.execute(
                update(Call)
                .where(Call.account_id == customer.account_id)
                .values(status="completed", twilio_sid="CA" + Call.id, ended_at=utcnow())
            )
        more = [{"clientNumber": factories.phone_number()} for _ in range(2)]
        response = customer.post(
            "/api/make_batch_toingg", json={"campaign": "welcome", "numberList": more}
        )
        assert response.status_code == 200, response.text

        # The settlement has found its calls and not yet given their credits back (a busy
        # worker), when the tick claims the account's share.
        handed: list[int] = []
        apply_together = ledger.apply_together

        def tick_meanwhile(session: Session, account_id: str, changes: list[ledger.Change]) -> None:
            if changes and changes[0].reason == "call_settlement" and not handed:
                ticking = threading.Thread(target=lambda: handed.append(_tick()))
                ticking.start()
                ticking.join(timeout=30)
            apply_together(session, account_id, changes)

        monkeypatch.setattr(ledger, "apply_together", tick_meanwhile)
        with session_scope() as session:
            assert calls_service.settle_ended(session, customer.account_id) == 1
        assert handed == [2], "the tick gave up the account's turn behind its settlement"
        assert _status(customer) == {"completed": 1, "dialing": 2}

    def test_a_status_callback_under_way_does_not_cost_the_account_its_turn(
        self, api: KeyedClient
    ) -> None:
        customer = _account_with_batch(api, numbers=1)
        assert _tick() == 1
        _placed([customer.account_id])
        with session_scope() as session:
            [(call_id, sid)] = session.execute(
                select(Call.id, Call.twilio_sid).where(Call.account_id == customer.account_id)
            ).all()
        more = [{"clientNumber": factories.phone_number()} for _ in range(2)]
        response = customer.post(
            "/api/make_batch_toingg", json={"campaign": "welcome", "numberList": more}
        )
        assert response.status_code == 200, response.text

        # Twilio's "ringing" for the call being applied, not committed yet (an API busy with
        # many callbacks), when the tick claims the account's share.
        handed: list[int] = []
        with session_scope() as session:
            ringing = {"CallSid": sid, "CallStatus": "ringing", "SequenceNumber": "1"}
            calls_service.apply_status_callback(session, call_id, ringing)
            ticking = threading.Thread(target=lambda: handed.append(_tick()))
            ticking.start()
            ticking.join(timeout=30)
        assert handed == [2], "the tick gave up the account's turn behind a status callback"
        assert _status(customer) == {"ringing": 1, "dialing": 2}
