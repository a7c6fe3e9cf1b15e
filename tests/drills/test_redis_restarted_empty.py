"""Drill: Redis killed in the middle of a batch and started again empty (no append-only file:
the queues, the dial-rate bucket and every flag are gone). The database knows what is owed: the
claims whose tasks were lost are sent again, and no number rings twice; the workers ride it out
(none exits, none is started again) and the API takes every status callback meanwhile; readiness
says Redis is down, and answers 200 again once it is back."""

import time

import pytest

from tests import factories
from tests.drills.conftest import report
from tests.drills.stack import CREDITS, DrillStack
from tests.stack import wait_until

# A stack of its own starts in a minute or more on a busy machine, then the batch runs.
pytestmark = [pytest.mark.drill, pytest.mark.timeout(600)]

NUMBERS = 600


def test_redis_killed_mid_batch_and_started_empty(drill: DrillStack) -> None:
    numbers = [factories.phone_number() for _ in range(NUMBERS)]
    wanted = set(numbers)
    started = time.monotonic()
    batch_id = drill.place_batch(numbers)

    wait_until(lambda: len(drill.rung(wanted)) >= 150, 60, interval=0.2, message="150 rung")
    drill.kill_redis()
    rung_at_kill = len(drill.rung(wanted))
    assert rung_at_kill < NUMBERS, "the batch finished before the kill: nothing was tested"
    time.sleep(1)
    down = drill.http.get("/api/ready")
    time.sleep(4)
    drill.start_redis()
    restarted = time.monotonic()
    wait_until(lambda: drill.http.get("/api/ready").status_code == 200, 30, message="ready")
    ready_after = time.monotonic() - restarted

    unfinished = None
    try:
        drill.wait_for_batch(batch_id, NUMBERS, timeout=150)
    except AssertionError as exc:  # the figures are worth seeing all the same
        unfinished = exc
    outcome = drill.outcome(batch_id, numbers)
    money = drill.wait_for_settled_credits()
    report(
        "Redis killed mid-batch and started again empty",
        {
            **outcome.figures(),
            "rung when Redis was killed": rung_at_kill,
            "Redis down for": "5 s",
            "/api/ready while down": f"{down.status_code} {down.json().get('detail', '')[:60]}",
            "/api/ready 200 again after the restart": f"{ready_after:.1f} s",
            "workers that exited": drill.exited_workers(),
            "batch placed to completed": f"{time.monotonic() - started:.1f} s",
            "reconciles": dict(drill.task_results("calls.reconcile")),
            "credits": money,
        },
    )
    if unfinished is not None:
        raise unfinished
    assert drill.exited_workers() == 0, "a worker exited on the broker's loss"
    assert down.status_code == 503 and down.json()["detail"].startswith("redis unreachable")
    assert outcome.repeats == {}
    assert outcome.missing == 0
    assert outcome.counts == {"completed": NUMBERS}
    assert outcome.callbacks_refused == 0
    assert money["balance"] == money["ledger"] == CREDITS - money["charged"]
