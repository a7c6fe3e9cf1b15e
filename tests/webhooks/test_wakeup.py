"""The claimer, its senders and their recorder in this process, as a worker runs them: a
delivery is claimed as soon as the transaction that wrote it commits, not at the next poll, and
a subject's next event as soon as the one before is recorded; the poll still delivers it when
the word is lost; and a claim cut short by an endpoint's share goes on when a sender's attempt
is recorded."""

import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import delete

from shared.config import get_settings
from shared.db import session_scope
from shared.events import outbox
from shared.models import WebhookEndpoint, new_id
from shared.webhooks import endpoints, wakeup
from shared.webhooks.schemas import EndpointCreate
from tests import factories
from tests.webhooks.receiver import Receiver
from workers.tasks import webhooks

# Far beyond what any test here waits: what arrives came by a wake-up, not by the poll.
NO_POLL = 60.0


@pytest.fixture
def account_id() -> Iterator[str]:
    account_id, _ = factories.account()
    yield account_id
    with session_scope() as session:
        session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.account_id == account_id))


@pytest.fixture
def claimer(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setattr(webhooks, "POLL_SECONDS", NO_POLL)
    senders = webhooks._Senders(4)
    claimer = webhooks._Claimer(senders)
    yield claimer
    claimer.stop.set()
    for thread in claimer.threads:
        thread.join(timeout=5)
    senders.pool.shutdown(wait=True)


def start(claimer: Any) -> None:
    claimer.ensure_running()
    assert wakeup.wait_for_subscriber(), "the listener did not subscribe"
    # The first pass of the claimer, on the poll's own timeout, is a long way off.
    time.sleep(0.1)


def add_endpoint(account_id: str, url: str) -> str:
    with session_scope() as session:
        return endpoints.create(session, account_id, EndpointCreate(url=url, events=["*"])).id


def append(account_id: str, call_id: str | None = None, type_: str = "call.queued") -> str:
    call_id = call_id or new_id()
    with session_scope() as session:
        return outbox.append(session, account_id, type_, "call", call_id, {"id": call_id}).id


def arrived(receiver: Receiver, count: int, within: float) -> list[str]:
    deadline = time.monotonic() + within
    while len(receiver.requests()) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return [r.headers["webhook-id"] for r in receiver.requests()]


def test_an_event_is_claimed_once_its_transaction_commits(account_id: str, claimer: Any) -> None:
    with Receiver() as receiver:
        add_endpoint(account_id, receiver.url)
        start(claimer)
        sent = [append(account_id) for _ in range(3)]
        assert sorted(arrived(receiver, 3, within=10)) == sorted(sent)


def test_a_subjects_events_follow_each_other_without_waiting_for_the_poll(
    account_id: str, claimer: Any
) -> None:
    """Each is due once the one before it is recorded: the recorder wakes the claimer."""
    call_id = new_id()
    with Receiver() as receiver:
        add_endpoint(account_id, receiver.url)
        start(claimer)
        sent = [
            append(account_id, call_id, t)
            for t in ("call.queued", "call.ringing", "call.answered", "call.completed")
        ]
        assert arrived(receiver, 4, within=10) == sent


def test_the_poll_delivers_what_no_word_announced(
    account_id: str, claimer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wakeup, "publish", lambda: None)
    monkeypatch.setattr(webhooks, "POLL_SECONDS", 0.5)
    with Receiver() as receiver:
        add_endpoint(account_id, receiver.url)
        start(claimer)
        event_id = append(account_id)
        assert arrived(receiver, 1, within=10) == [event_id]


def test_what_an_endpoints_share_held_back_goes_when_an_attempt_is_recorded(
    account_id: str, claimer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "WEBHOOK_ENDPOINT_CONCURRENCY", 1)
    with Receiver(lambda n: None if n == 1 else 200) as receiver:
        add_endpoint(account_id, receiver.url)
        start(claimer)
        sent = [append(account_id) for _ in range(3)]
        assert len(arrived(receiver, 1, within=10)) == 1
        assert len(arrived(receiver, 2, within=1)) == 1  # the one sender the endpoint may have
        receiver.release()
        assert sorted(arrived(receiver, 3, within=10)) == sorted(sent)
