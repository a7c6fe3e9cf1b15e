"""Jobs are sent once the transaction that made them commits: not when a savepoint inside it is
released, and not dropped when one rolls back."""

import pytest
from sqlalchemy import text

from shared import queue
from shared.after_commit import on_commit
from shared.db import get_engine, get_sessionmaker, session_scope


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[object, ...]]]:
    sent: list[tuple[str, tuple[object, ...]]] = []
    monkeypatch.setattr(queue, "send_now", lambda name, *args: sent.append((name, args)))
    return sent


def test_a_job_waits_for_the_commit_through_savepoints(
    sent: list[tuple[str, tuple[object, ...]]],
) -> None:
    with session_scope() as session:
        queue.enqueue(session, "tests.first", 1)
        with session.begin_nested():
            session.execute(text("SELECT 1"))
        assert sent == [], "sent when a savepoint was released, before the commit"
        with pytest.raises(ZeroDivisionError), session.begin_nested():
            session.execute(text("SELECT 1"))
            raise ZeroDivisionError
        queue.enqueue(session, "tests.second", 2)
    assert sent == [("tests.first", (1,)), ("tests.second", (2,))]


def test_a_rolled_back_transaction_sends_nothing(
    sent: list[tuple[str, tuple[object, ...]]],
) -> None:
    with pytest.raises(ZeroDivisionError), session_scope() as session:
        queue.enqueue(session, "tests.never", 1)
        raise ZeroDivisionError
    with session_scope():
        pass
    assert sent == []


def test_an_action_runs_once_its_connection_is_back_in_the_pool() -> None:
    # An action may open a session of its own (a batch followed after its calls changed): run
    # while the first connection is still out, every request needs two, and enough requests at
    # once wait on the pool for each other until its timeout.
    pool = get_engine().pool
    seen: list[int] = []
    before = pool.checkedout()  # type: ignore[attr-defined]
    with session_scope() as session:
        session.execute(text("SELECT 1"))
        on_commit(session, lambda: seen.append(pool.checkedout()))  # type: ignore[attr-defined]
    assert seen == [before]


def test_an_action_of_a_savepoint_rolled_back_is_dropped_with_it(
    sent: list[tuple[str, tuple[object, ...]]],
) -> None:
    # A Stripe event's handler runs in a savepoint that rolls back when it fails: what it
    # meant to send went out anyway, for changes the database did not keep.
    with session_scope() as session:
        with pytest.raises(ZeroDivisionError), session.begin_nested():
            queue.enqueue(session, "tests.rolled_back", 1)
            with session.begin_nested():
                queue.enqueue(session, "tests.inner_released", 2)
            raise ZeroDivisionError
        with session.begin_nested():
            queue.enqueue(session, "tests.released", 3)
    assert sent == [("tests.released", (3,))]


def test_a_key_dropped_with_its_savepoint_can_be_added_again() -> None:
    ran: list[str] = []
    with session_scope() as session:
        with pytest.raises(ZeroDivisionError), session.begin_nested():
            on_commit(session, lambda: ran.append("rolled back"), key="batch")
            raise ZeroDivisionError
        on_commit(session, lambda: ran.append("kept"), key="batch")
        on_commit(session, lambda: ran.append("repeat"), key="batch")
    assert ran == ["kept"]


def test_an_action_of_a_transaction_closed_uncommitted_never_runs() -> None:
    ran: list[str] = []
    session = get_sessionmaker()()
    session.execute(text("SELECT 1"))
    on_commit(session, lambda: ran.append("closed"), key="k")
    session.close()
    session.execute(text("SELECT 1"))
    on_commit(session, lambda: ran.append("next"), key="k")
    session.commit()
    session.close()
    assert ran == ["next"]
