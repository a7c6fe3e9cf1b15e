"""Drill: every PostgreSQL connection of the stack (API, workers) terminated with
pg_terminate_backend in the middle of a batch, twice. Work in flight rolls back and is done
again from what the database says: nothing is lost or doubled. The API answers 503 with
Retry-After to the requests it was serving, and serves the next ones with new connections,
with no restart.

A request is made to be in flight at each kill: it updates a campaign whose row the drill holds
locked from a connection of its own, so the API's connection is inside a transaction, waiting,
when it is terminated. Meanwhile clients poll the API without pause."""

import threading
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import text

from tests import factories
from tests.drills.conftest import report
from tests.drills.stack import APPLICATION_NAME, CREDITS, DrillStack
from tests.stack import wait_until

# A stack of its own starts in a minute or more on a busy machine, then the batch runs.
pytestmark = [pytest.mark.drill, pytest.mark.timeout(600)]

NUMBERS = 600
KILLS_AT = (120, 320)  # numbers rung at the carrier


class Pollers:
    """Clients reading the batch and its calls without pause; every answer's status is kept."""

    def __init__(self, drill: DrillStack, batch_id: str, count: int = 3) -> None:
        self.drill, self.batch_id = drill, batch_id
        self.statuses: Counter[int] = Counter()
        self.without_retry_after = 0
        self.stopped = threading.Event()
        self.threads = [threading.Thread(target=self._poll, daemon=True) for _ in range(count)]

    def _poll(self) -> None:
        with httpx.Client(base_url=self.drill.api_url, timeout=30) as http:
            params = {"apiKey": self.drill.api_key}
            paths = [f"/api/batches/{self.batch_id}", "/api/calls", "/api/credits"]
            while not self.stopped.is_set():
                for path in paths:
                    response = http.get(path, params={**params, "batch": self.batch_id})
                    self.statuses[response.status_code] += 1
                    if response.status_code == 503 and "Retry-After" not in response.headers:
                        self.without_retry_after += 1

    def __enter__(self) -> "Pollers":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopped.set()
        for thread in self.threads:
            thread.join(timeout=30)


def _update_waits_for_the_lock(drill: DrillStack) -> bool:
    with drill.db.connect() as connection:
        return bool(
            connection.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND application_name = :name AND wait_event_type = 'Lock' "
                    "AND query LIKE 'UPDATE campaigns %'"
                ),
                {"name": APPLICATION_NAME},
            )
        )


def kill_with_a_request_in_flight(drill: DrillStack, campaign_id: str) -> dict[str, object]:
    """Terminate the stack's connections while the API is inside a transaction."""
    with drill.db.connect() as holder, ThreadPoolExecutor(1) as pool:
        holder.execute(
            text("SELECT id FROM campaigns WHERE id = :id FOR UPDATE"), {"id": campaign_id}
        )
        in_flight: Future[httpx.Response] = pool.submit(
            drill.http.patch,
            f"/api/campaigns/{campaign_id}",
            json={"script": "Hello {name}, again."},
            params={"apiKey": drill.api_key},
        )
        wait_until(lambda: _update_waits_for_the_lock(drill), 30, message="the update waits")
        terminated = drill.terminate_database_connections()
        try:
            answer = in_flight.result(timeout=20)
        finally:
            holder.rollback()  # a request the kill missed would wait for this forever
    killed_at = time.monotonic()
    wait_until(
        lambda: drill.get(f"/api/campaigns/{campaign_id}").status_code == 200,
        30,
        interval=0.05,
        message="the API serves again",
    )
    return {
        "connections terminated": terminated,
        "the request in flight": f"{answer.status_code}, "
        f"Retry-After {answer.headers.get('Retry-After')}",
        "next answer 200 after": f"{time.monotonic() - killed_at:.2f} s",
        "answer": answer,
    }


def test_database_connections_killed_mid_batch(drill: DrillStack) -> None:
    spare = drill.post("/api/campaigns", {"name": "spare", "script": "Hello {name}."})
    assert spare.status_code == 201, spare.text
    numbers = [factories.phone_number() for _ in range(NUMBERS)]
    wanted = set(numbers)
    started = time.monotonic()
    batch_id = drill.place_batch(numbers)

    kills = []
    with Pollers(drill, batch_id) as pollers:
        for at in KILLS_AT:
            wait_until(
                lambda at=at: len(drill.rung(wanted)) >= at, 90, interval=0.2, message=f"{at}"
            )
            kills.append(kill_with_a_request_in_flight(drill, spare.json()["id"]))
        drill.wait_for_batch(batch_id, NUMBERS, timeout=150)
        time.sleep(1)  # the pollers go on with the recovered API a little longer
    patched = drill.http.patch(
        f"/api/campaigns/{spare.json()['id']}",
        json={"script": "Hello {name}, again."},
        params={"apiKey": drill.api_key},
    )
    outcome = drill.outcome(batch_id, numbers)
    money = drill.wait_for_settled_credits()
    report(
        "PostgreSQL connections killed mid-batch, twice",
        {
            **outcome.figures(),
            **{
                f"kill {i + 1} (at {at} rung)": {k: v for k, v in kill.items() if k != "answer"}
                for i, (at, kill) in enumerate(zip(KILLS_AT, kills, strict=True))
            },
            "pollers' answers": dict(pollers.statuses),
            "batch placed to completed": f"{time.monotonic() - started:.1f} s",
            "reconciles": dict(drill.task_results("calls.reconcile")),
            "credits": money,
        },
    )
    for kill in kills:
        answer = kill["answer"]
        assert isinstance(answer, httpx.Response)
        assert answer.status_code == 503, answer.text
        assert answer.headers["Retry-After"] == "1"
    assert patched.status_code == 200, patched.text  # the same request, retried, succeeds
    assert set(pollers.statuses) <= {200, 503}, pollers.statuses
    assert pollers.without_retry_after == 0
    assert drill.http.get("/api/ready").status_code == 200
    assert outcome.repeats == {}
    assert outcome.missing == 0
    assert outcome.counts == {"completed": NUMBERS}
    assert money["balance"] == money["ledger"] == CREDITS - money["charged"]
