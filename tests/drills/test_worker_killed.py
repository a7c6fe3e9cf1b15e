"""Drill: a worker killed with SIGKILL in the middle of a batch, a new one started later. The
database knows what is owed: the dead worker's claims are sent again, its dials without a SID
are looked up at the carrier, and no number rings twice."""

import time

import pytest

from tests import factories
from tests.drills.conftest import report
from tests.drills.stack import CREDITS, DrillStack
from tests.stack import wait_until

# A stack of its own starts in a minute or more on a busy machine, then the batch runs.
pytestmark = [pytest.mark.drill, pytest.mark.timeout(600)]

NUMBERS = 600


def test_a_worker_killed_mid_batch(drill: DrillStack) -> None:
    numbers = [factories.phone_number() for _ in range(NUMBERS)]
    wanted = set(numbers)
    started = time.monotonic()
    batch_id = drill.place_batch(numbers)

    wait_until(lambda: len(drill.rung(wanted)) >= 150, 60, interval=0.2, message="150 rung")
    victim = drill.processes.workers[0]
    drill.processes.kill_worker(victim)
    drill.processes.workers.remove(victim)
    rung_at_kill = len(drill.rung(wanted))
    assert rung_at_kill < NUMBERS, "the batch finished before the kill: nothing was tested"
    time.sleep(10)  # one worker carries on alone for a while
    drill.processes.start_worker()

    drill.wait_for_batch(batch_id, NUMBERS, timeout=150)
    outcome = drill.outcome(batch_id, numbers)
    money = drill.wait_for_settled_credits()
    report(
        "a worker killed with SIGKILL mid-batch",
        {
            **outcome.figures(),
            "rung when the worker was killed": rung_at_kill,
            "batch placed to completed": f"{time.monotonic() - started:.1f} s",
            "reconciles": dict(drill.task_results("calls.reconcile")),
            "credits": money,
        },
    )
    assert outcome.repeats == {}
    assert outcome.missing == 0
    assert outcome.counts == {"completed": NUMBERS}
    assert money["balance"] == money["ledger"] == CREDITS - money["charged"]
