"""Retention of webhook deliveries: those delivered or given up, with their attempts, are
deleted once their last change is older than RETENTION_DAYS, in short batches that skip rows
someone holds; a pending one, and the events themselves, stay."""

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Interval, delete, func, literal, select, text, update

from shared.config import get_settings
from shared.db import get_sessionmaker, session_scope
from shared.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, new_id
from shared.retention import service as retention_service
from tests import factories
from tests.api.conftest import KeyedClient
from tests.webhooks.receiver import Receiver
from tests.webhooks.test_delivery import PATH, add_endpoint, append, run_due, state_of

OLD = timedelta(days=91)
# Not the event the 410 endpoint's disabling appends.
CALLS = ["call.*"]


@pytest.fixture(autouse=True)
def retries_later(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = get_settings()
    monkeypatch.setattr(settings, "WEBHOOK_RETRY_SCHEDULE_SECONDS", [3600.0])
    monkeypatch.setattr(settings, "WEBHOOK_RETRY_WINDOW_SECONDS", 3 * 86400.0)
    monkeypatch.setattr(settings, "WEBHOOK_TIMEOUT_SECONDS", 2.0)


@pytest.fixture
def customer(client: TestClient) -> Iterator[KeyedClient]:
    account_id, key = factories.account()
    yield KeyedClient(client, account_id, key)
    with session_scope() as session:
        session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.account_id == account_id))


def purge(batch: int = retention_service.BATCH) -> retention_service.Purged:
    return retention_service.purge(retention_service.cutoff(), batch=batch)


def age_deliveries(event_id: str, by: timedelta = OLD) -> None:
    with session_scope() as session:
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.event_id == event_id)
            .values(
                created_at=WebhookDelivery.created_at - literal(by, Interval),
                updated_at=WebhookDelivery.updated_at - literal(by, Interval),
            )
            .execution_options(synchronize_session=False)
        )


def shown(customer: KeyedClient, endpoint_id: str) -> dict[str, str]:
    """The endpoint's deliveries as its GET lists them: event id to state."""
    response = customer.get(f"{PATH}/{endpoint_id}/deliveries", limit=500)
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["total"] == len(page["items"])
    return {item["eventId"]: item["state"] for item in page["items"]}


def attempts_of(event_id: str) -> int:
    with session_scope() as session:
        return (
            session.scalar(
                select(func.count())
                .select_from(WebhookAttempt)
                .join(WebhookDelivery, WebhookDelivery.id == WebhookAttempt.delivery_id)
                .where(WebhookDelivery.event_id == event_id)
            )
            or 0
        )


class TestDeliveries:
    def test_old_deliveries_that_are_over_go_and_pending_and_recent_ones_stay(
        self, customer: KeyedClient
    ) -> None:
        with (
            Receiver(lambda n: 200) as fine,
            Receiver(lambda n: 410) as gone,
            Receiver(lambda n: 500) as failing,
        ):
            delivered_to = add_endpoint(customer.account_id, fine.url, CALLS)[0]
            given_up_to = add_endpoint(customer.account_id, gone.url, CALLS)[0]
            retried_to = add_endpoint(customer.account_id, failing.url, CALLS)[0]
            old = append(customer.account_id, new_id(), "call.completed")
            young = append(customer.account_id, new_id(), "call.completed")
            run_due()
        for event in (old, young):
            assert state_of(delivered_to, event.id) == "delivered"
            assert state_of(given_up_to, event.id) == "failed"
            assert state_of(retried_to, event.id) == "pending"  # next attempt in an hour
        assert attempts_of(old.id) == 3
        age_deliveries(old.id)

        purged = purge()

        assert purged.webhook_deliveries >= 2 and purged.webhook_attempts >= 2
        assert shown(customer, delivered_to) == {young.id: "delivered"}
        assert shown(customer, given_up_to) == {young.id: "failed"}
        assert shown(customer, retried_to) == {old.id: "pending", young.id: "pending"}
        assert attempts_of(old.id) == 1  # the pending delivery's attempt
        # The events are the audit trail: they stay, and can still be sent again.
        response = customer.get(f"/api/events/{old.id}")
        assert response.status_code == 200, response.text
        assert response.json()["type"] == "call.completed"
        resent = customer.post(f"/api/events/{old.id}/resend")
        assert resent.status_code == 200, resent.text
        assert state_of(delivered_to, old.id) == "pending"

    def test_a_delivery_sent_again_lately_is_kept_however_old_its_event(
        self, customer: KeyedClient
    ) -> None:
        with Receiver() as receiver:
            endpoint_id = add_endpoint(customer.account_id, receiver.url)[0]
            event = append(customer.account_id, new_id())
            run_due()
            age_deliveries(event.id)
            assert customer.post(f"/api/events/{event.id}/resend").status_code == 200
            run_due()
        assert state_of(endpoint_id, event.id) == "delivered"

        purge()

        assert shown(customer, endpoint_id) == {event.id: "delivered"}
        assert attempts_of(event.id) == 2

    def test_each_batch_is_its_own_transaction_and_skips_a_held_row(
        self, customer: KeyedClient
    ) -> None:
        with Receiver() as receiver:
            endpoint_id = add_endpoint(customer.account_id, receiver.url)[0]
            events = [append(customer.account_id, new_id()) for _ in range(5)]
            run_due()
        for event in events:
            age_deliveries(event.id)
        held_event = events[0]
        # A resend of the first holds its delivery's row while the purge runs.
        session = get_sessionmaker()()
        try:
            session.execute(
                text("SELECT 1 FROM webhook_deliveries WHERE event_id = :id FOR UPDATE"),
                {"id": held_event.id},
            )
            done = threading.Event()
            results: list[retention_service.Purged] = []
            worker = threading.Thread(
                target=lambda: (results.append(purge(batch=2)), done.set()), daemon=True
            )
            worker.start()
            assert done.wait(15), "the purge waited for a row someone holds"
        finally:
            session.rollback()
            session.close()
        assert results[0].webhook_deliveries >= 4
        assert shown(customer, endpoint_id) == {held_event.id: "delivered"}
        purge()
        assert shown(customer, endpoint_id) == {}
