"""Webhook delivery as docker-compose and `toingg run` deploy it: the dial workers consume every
queue but webhook delivery's, and a webhook worker of its own delivers. Without it nothing is
sent; with it each event arrives, signed."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete

from shared.db import session_scope
from shared.models import WebhookEndpoint
from shared.queue import WORK_QUEUES
from tests import factories
from tests.api.conftest import KeyedClient
from tests.stack import StackProcesses, wait_until
from tests.webhooks.receiver import Receiver
from tests.webhooks.test_workers import PATH, append, delivery_of

# Longer than the claimer's poll and the beat's tick together: a webhook worker would have
# delivered by then.
UNSENT_SECONDS = 5


@pytest.fixture
def deployed(api_server: str, tmp_path: Path) -> Iterator[StackProcesses]:
    """A dial worker on every queue but webhook delivery's, and beat: no webhook worker yet."""
    processes = StackProcesses(tmp_path)
    processes.start_workers(
        1, command=("worker", "--concurrency", "8", "--queues", ",".join(WORK_QUEUES))
    )
    processes.start_beat()
    yield processes
    processes.stop_all()


@pytest.fixture
def customer(client: TestClient) -> Iterator[KeyedClient]:
    account_id, key = factories.account()
    yield KeyedClient(client, account_id, key)
    with session_scope() as session:
        session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.account_id == account_id))


def test_the_webhook_worker_delivers_what_the_dial_workers_leave(
    customer: KeyedClient, deployed: StackProcesses
) -> None:
    with Receiver(lambda n: 200) as receiver:
        created = customer.post(PATH, {"url": receiver.url, "events": ["call.*"]})
        assert created.status_code == 201, created.text
        endpoint_id, secret = created.json()["id"], created.json()["secret"]
        event = append(customer.account_id)
        with pytest.raises(AssertionError):
            wait_until(lambda: receiver.requests(), UNSENT_SECONDS, interval=0.2)
        assert delivery_of(customer, endpoint_id)["state"] == "pending"

        deployed.start_workers(1, command=("webhook-worker",))
        wait_until(
            lambda: delivery_of(customer, endpoint_id)["state"] == "delivered",
            60,
            interval=0.2,
            message="delivered by the webhook worker",
        )
        [request] = receiver.requests()
    assert request.headers["webhook-id"] == event.id
    assert request.verified_with(secret)["data"] == event.data
