"""A claim out with its worker when its account is blocked by a dispute, or its sender is taken
from the account: the dispatcher's tick claimed the call or the SMS, and the block or the removal
commits while the worker holds the claim, waiting for its slot in the carrier's rate. Nothing
reaches the carrier: a blocked account's call or SMS goes back to the queue and goes on once the
block is lifted; one whose sender was removed fails, its credits given back.

The block or the removal is a transaction held open while the worker takes its claim (and looks
at its sender then), and committed as the worker comes to its slot.
"""

from collections.abc import Callable, Iterator
from contextlib import suppress

import pytest
from celery.exceptions import Retry
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from shared.billing import disputes
from shared.caller_ids import service as caller_ids
from shared.config import get_settings
from shared.db import get_sessionmaker, session_scope
from shared.models import Account, Call, SmsMessage
from shared.ratelimit import carrier as carrier_limits
from shared.ratelimit.gcra import Bucket, Decision
from shared.sms import dispatcher as sms_dispatcher
from tests import factories
from tests.api.conftest import KeyedClient
from tests.concurrency import Racer
from tests.stack import Carrier


@pytest.fixture(autouse=True)
def only_these_owed() -> None:
    """What other tests left queued (no worker runs here) would be claimed by the ticks too."""
    with session_scope() as session:
        for model in (Call, SmsMessage):
            session.execute(
                update(model)
                .where(model.status.in_(("queued", "dialing", "sending")))
                .values(status="canceled" if model is Call else "failed")
            )


@pytest.fixture
def customer(api: KeyedClient, monkeypatch: pytest.MonkeyPatch) -> tuple[KeyedClient, str]:
    """An account with 100 credits that calls and texts from a number of its own."""
    monkeypatch.setattr(get_settings(), "PLATFORM_FROM_NUMBER_SHARED", False)
    account_id, key = factories.account(credits=100)
    number = factories.caller_id(account_id)
    factories.campaign(account_id, name="welcome")
    return KeyedClient(api.client, account_id, key), number


@pytest.fixture
def carrier_at_api(carrier: Carrier, api_server: str) -> Iterator[Carrier]:
    """The sandbox carrier, with the API up for its callbacks."""
    yield carrier


Change = Callable[[Session], object]


def block(account_id: str) -> Change:
    """What a dispute's first event does to its account (shared.billing.disputes.track)."""

    def change(session: Session) -> None:
        account = session.get(Account, account_id, with_for_update=True)
        assert account is not None
        account.disputed = True
        session.flush()

    return change


def remove(account_id: str, number: str) -> Change:
    return lambda session: caller_ids.remove(session, account_id, number)


class _SlotAfter:
    """The carrier's bucket, committing `held` as the worker asks it for a slot."""

    def __init__(self, bucket: Bucket, held: Session) -> None:
        self._bucket = bucket
        self._held = held

    def reserve(self, max_wait_seconds: float) -> Decision:
        if self._held.in_transaction():
            self._held.commit()
        return self._bucket.reserve(max_wait_seconds)


def worker_meets(
    monkeypatch: pytest.MonkeyPatch, bucket: str, change: Change, work: Callable[[], object]
) -> None:
    """Run the worker's task while `change` is written and not committed: it commits as the
    worker comes to its slot."""
    held = get_sessionmaker()()
    try:
        change(held)
        original = getattr(carrier_limits, bucket)
        with monkeypatch.context() as patched:
            patched.setattr(carrier_limits, bucket, lambda: _SlotAfter(original(), held))
            with suppress(Retry):  # the task would come back for it later
                work()
        assert not held.in_transaction(), "the worker never came to its slot"
    finally:
        held.close()


def unblock(account_id: str) -> None:
    with session_scope() as session:
        disputes.unblock(session, account_id)


# --- SMS -----------------------------------------------------------------------------------


def sms_tick() -> int:
    from workers.tasks import sms as sms_tasks

    return sms_tasks.dispatch()


def send_claimed(sms_id: str) -> None:
    """The send task the tick sent for the message, as a worker runs it."""
    from workers.tasks import sms as sms_tasks

    with session_scope() as session:
        attempt = session.scalar(select(SmsMessage.attempt).where(SmsMessage.id == sms_id))
    sms_tasks.send(sms_id, attempt)


def accept_sms(customer: KeyedClient) -> tuple[str, str]:
    to = factories.phone_number()
    sent = customer.post("/api/send_sms", json={"phoneNumber": to, "message": "Your code"})
    assert sent.status_code == 200, sent.text
    return sent.json()["smsId"], to


def texts_to(carrier: Carrier, to: str) -> int:
    return sum(1 for message in carrier.messages() if message["to"] == to)


class TestAnSmsOutWithItsWorker:
    def test_is_not_sent_once_its_account_is_blocked_and_goes_on_once_unblocked(
        self,
        customer: tuple[KeyedClient, str],
        carrier_at_api: Carrier,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        api, _ = customer
        sms_id, to = accept_sms(api)
        assert sms_tick() == 1
        worker_meets(monkeypatch, "sms_bucket", block(api.account_id), lambda: send_claimed(sms_id))
        assert texts_to(carrier_at_api, to) == 0, "a blocked account's SMS was sent"
        assert api.get(f"/api/sms/{sms_id}").json()["status"] == "queued"

        unblock(api.account_id)
        assert sms_tick() == 1
        send_claimed(sms_id)
        assert texts_to(carrier_at_api, to) == 1

    def test_claimed_while_its_block_commits_is_not_sent(
        self, customer: tuple[KeyedClient, str], carrier_at_api: Carrier
    ) -> None:
        # The tick's claim reads the account unblocked while the dispute's block is written and
        # not committed (a message's claim locks no account), and claims it.
        api, _ = customer
        sms_id, to = accept_sms(api)
        held = get_sessionmaker()()
        try:
            block(api.account_id)(held)
            ticking = Racer(sms_dispatcher.hand_out)
            ticking.wait_until_blocked_or_done()
            held.commit()
        finally:
            held.close()
        ticking.join()
        send_claimed(sms_id)
        assert texts_to(carrier_at_api, to) == 0, "a blocked account's SMS was sent"
        assert api.get(f"/api/sms/{sms_id}").json()["status"] == "queued"

    def test_is_not_sent_from_a_number_removed_meanwhile(
        self,
        customer: tuple[KeyedClient, str],
        carrier_at_api: Carrier,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        api, number = customer
        sms_id, to = accept_sms(api)
        assert sms_tick() == 1
        worker_meets(
            monkeypatch, "sms_bucket", remove(api.account_id, number), lambda: send_claimed(sms_id)
        )
        assert texts_to(carrier_at_api, to) == 0, "sent from a number the account no longer has"
        sms = api.get(f"/api/sms/{sms_id}").json()
        assert (sms["status"], sms["errorCode"]) == ("failed", "caller-id-not-allowed")
        assert api.get("/api/credits").json()["balance"] == 100


# --- calls ---------------------------------------------------------------------------------


def call_tick() -> int:
    from workers.tasks import calls as call_tasks

    return call_tasks.dispatch()


def dial_claimed(call_id: str) -> None:
    """The dial task the tick sent for the call, as a worker runs it."""
    from workers.tasks import calls as call_tasks

    with session_scope() as session:
        attempt = session.scalar(select(Call.attempt).where(Call.id == call_id))
    call_tasks.dial(call_id, {"attempt": attempt})


def accept_call(customer: KeyedClient) -> tuple[str, str]:
    to = factories.phone_number()
    placed = customer.post(
        "/api/make_toingg", json={"campaign": "welcome", "name": "Ada", "phoneNumber": to}
    )
    assert placed.status_code == 200, placed.text
    return placed.json()["callId"], to


class TestACallOutWithItsWorker:
    def test_is_not_dialed_once_its_account_is_blocked_and_goes_on_once_unblocked(
        self,
        customer: tuple[KeyedClient, str],
        carrier_at_api: Carrier,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        api, _ = customer
        call_id, to = accept_call(api)
        assert call_tick() == 1
        worker_meets(
            monkeypatch, "dial_bucket", block(api.account_id), lambda: dial_claimed(call_id)
        )
        assert carrier_at_api.calls(to=to) == [], "a blocked account's call was dialed"
        assert api.get(f"/api/calls/{call_id}").json()["status"] == "queued"
        assert api.get("/api/credits").json()["balance"] == 100

        unblock(api.account_id)
        assert call_tick() == 1
        dial_claimed(call_id)
        assert len(carrier_at_api.calls(to=to)) == 1

    def test_is_not_dialed_from_a_number_removed_meanwhile(
        self,
        customer: tuple[KeyedClient, str],
        carrier_at_api: Carrier,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        api, number = customer
        call_id, to = accept_call(api)
        assert call_tick() == 1
        worker_meets(
            monkeypatch,
            "dial_bucket",
            remove(api.account_id, number),
            lambda: dial_claimed(call_id),
        )
        assert carrier_at_api.calls(to=to) == [], "dialed from a number the account no longer has"
        call = api.get(f"/api/calls/{call_id}").json()
        assert (call["status"], call["error"]["code"]) == ("failed", "caller-id-not-allowed")
        assert api.get("/api/credits").json()["balance"] == 100
