"""Forcing an interleaving on PostgreSQL: one transaction is held open at the critical point
while another runs in its own thread and session until it waits for the first one's lock."""

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from sqlalchemy import text
from sqlalchemy.orm import Session

from shared.db import get_engine, session_scope

T = TypeVar("T")


class Racer(Generic[T]):
    """`action(session)` in a thread of its own, in a transaction that commits when it returns
    (and rolls back when it raises: `join` raises it again)."""

    def __init__(self, action: Callable[[Session], T]) -> None:
        self._action = action
        self._pid: int | None = None
        self._started = threading.Event()
        self._result: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            with session_scope() as session:
                self._pid = session.scalar(text("SELECT pg_backend_pid()"))
                self._started.set()
                self._result = self._action(session)
        except BaseException as exc:
            self._error = exc
        finally:
            self._started.set()

    def wait_until_blocked(self, timeout: float = 30) -> None:
        """Until the action waits for a lock another transaction holds: it has read what it
        read, and goes on only when that transaction ends."""
        assert self.wait_until_blocked_or_done(timeout), (
            f"finished without waiting for a lock: {self._error!r}"
        )

    def wait_until_blocked_or_done(self, timeout: float = 30) -> bool:
        """Until the action waits for a lock (True) or has ended without waiting for one: for an
        action that must not wait, to show what happens when it does."""
        self._started.wait(timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._thread.is_alive():
                return False
            with get_engine().connect() as connection:
                waiting = connection.scalar(
                    text("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = :pid"),
                    {"pid": self._pid},
                )
            if waiting:
                return True
            time.sleep(0.02)
        raise AssertionError("neither waited for a lock nor ended")

    def join(self, timeout: float = 30) -> T:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "still running"
        if self._error is not None:
            raise self._error
        return self._result  # type: ignore[return-value]


def terminate_backend(session: Session) -> None:
    """Kill the session's connection from another, as a database restart or failover would:
    its commit then fails."""
    pid = session.scalar(text("SELECT pg_backend_pid()"))
    with get_engine().connect() as connection:
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})


def wait_until_any_waits(still_running: Callable[[], bool], timeout: float = 30) -> None:
    """Until some connection to this database waits for a lock: for an action whose sessions are
    not the test's to name (an API request in the app's threads, a command in a process of its
    own). `still_running` tells an action that ended without waiting from one not there yet."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with get_engine().connect() as connection:
            waiting = connection.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                )
            )
        if waiting:
            return
        assert still_running(), "ended without waiting for a lock"
        time.sleep(0.02)
    raise AssertionError("no connection waited for a lock")
