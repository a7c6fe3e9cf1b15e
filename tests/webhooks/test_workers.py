"""Delivery by the real worker and beat processes: retried from the database by the tick until
the receiver takes it, given up and disabled after a window of failures, and sent again after
the worker that was sending it is killed."""

import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete

from shared.db import session_scope
from shared.events import outbox
from shared.models import Event, WebhookEndpoint, new_id
from tests import factories
from tests.api.conftest import KeyedClient
from tests.stack import StackProcesses, wait_until
from tests.webhooks.receiver import Receiver

PATH = "/api/webhook-endpoints"
WINDOW_SECONDS = 8
TIMEOUT_SECONDS = 3
STACK_ENV = {
    "WEBHOOK_RETRY_SCHEDULE_SECONDS": "[0.5]",
    "WEBHOOK_RETRY_WINDOW_SECONDS": str(WINDOW_SECONDS),
    "WEBHOOK_TIMEOUT_SECONDS": str(TIMEOUT_SECONDS),
}


@pytest.fixture
def customer(client: TestClient) -> Iterator[KeyedClient]:
    account_id, key = factories.account()
    yield KeyedClient(client, account_id, key)
    with session_scope() as session:
        session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.account_id == account_id))


def register(customer: KeyedClient, url: str) -> tuple[str, str]:
    created = customer.post(PATH, {"url": url, "events": ["call.*"]})
    assert created.status_code == 201, created.text
    return created.json()["id"], created.json()["secret"]


def append(account_id: str) -> Event:
    call_id = new_id()
    with session_scope() as session:
        return outbox.append(
            session, account_id, "call.completed", "call", call_id, {"id": call_id}
        )


def delivery_of(customer: KeyedClient, endpoint_id: str) -> dict:  # type: ignore[type-arg]
    [shown] = customer.get(f"{PATH}/{endpoint_id}/deliveries").json()["items"]
    return shown  # type: ignore[no-any-return]


class TestDeliveredByTheWorkers:
    def test_500_three_times_then_200_gets_the_same_id_signed_every_time(
        self, customer: KeyedClient, stack: StackProcesses
    ) -> None:
        with Receiver(lambda n: 500 if n <= 3 else 200) as receiver:
            endpoint_id, secret = register(customer, receiver.url)
            event = append(customer.account_id)
            wait_until(
                lambda: delivery_of(customer, endpoint_id)["state"] == "delivered",
                60,
                interval=0.2,
                message="delivered after three 500s",
            )
            got = receiver.requests()
        assert len(got) == 4
        for request in got:
            assert request.headers["webhook-id"] == event.id
            assert request.verified_with(secret)["type"] == "call.completed"
        attempts = delivery_of(customer, endpoint_id)["attempts"]
        assert [a["statusCode"] for a in attempts] == [500, 500, 500, 200]

    def test_a_receiver_down_for_the_whole_window_ends_disabled_with_its_event(
        self, customer: KeyedClient, stack: StackProcesses
    ) -> None:
        with Receiver(lambda n: 503) as receiver:
            endpoint_id, _ = register(customer, receiver.url)
            append(customer.account_id)
            wait_until(
                lambda: not customer.get(f"{PATH}/{endpoint_id}").json()["enabled"],
                WINDOW_SECONDS + 60,
                interval=0.5,
                message="disabled after the window",
            )
            tried = receiver.requests()
        assert tried[-1].at - tried[0].at >= WINDOW_SECONDS - 1
        shown = customer.get(f"{PATH}/{endpoint_id}").json()
        assert shown["disabledReason"] == "every attempt failed for the retry window"
        assert delivery_of(customer, endpoint_id)["state"] == "failed"
        [event] = customer.get("/api/events", type="webhook_endpoint.disabled").json()["items"]
        assert event["subjectId"] == endpoint_id and event["data"]["enabled"] is False

    def test_a_worker_killed_mid_delivery_still_delivers_it(
        self, customer: KeyedClient, stack: StackProcesses
    ) -> None:
        # The first request is held open until the worker sending it is dead.
        with Receiver(lambda n: None if n == 1 else 200) as receiver:
            endpoint_id, secret = register(customer, receiver.url)
            event = append(customer.account_id)
            wait_until(lambda: receiver.requests(), 60, interval=0.1, message="first request")
            [worker] = stack.workers
            stack.kill_worker(worker)
            killed = time.monotonic()
            receiver.release()
            stack.workers.remove(worker)
            stack.start_worker()
            wait_until(
                lambda: delivery_of(customer, endpoint_id)["state"] == "delivered",
                90,
                interval=0.5,
                message="delivered by the new worker",
            )
            got = receiver.requests()
        assert len(got) >= 2
        assert {r.headers["webhook-id"] for r in got} == {event.id}
        assert got[-1].verified_with(secret)["data"] == event.data
        # Sent again once the lost attempt's lease ran out, not an hour later.
        assert got[-1].at - killed < TIMEOUT_SECONDS + 5 + 30
        first, *_, last = delivery_of(customer, endpoint_id)["attempts"]
        assert first["statusCode"] is None and first["latencyMs"] is None
        assert last["statusCode"] == 200
