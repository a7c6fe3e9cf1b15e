"""Drill: faults between the workers and the carrier. Of the call creations, 15% are answered
429 and create nothing (given back and retried), 10% create the call and answer 500, 10% create
the call and drop the connection with no answer. The last two are ambiguous: the call exists
and rings, so it must be found (by its status callback or by reconcile), never dialed again."""

import time

import pytest

from tests import factories
from tests.drills.conftest import report
from tests.drills.stack import CREDITS, DrillStack

# A stack of its own starts in a minute or more on a busy machine, then the batch runs.
pytestmark = [pytest.mark.drill, pytest.mark.timeout(600)]

NUMBERS = 300
FAULTS = {"create_429": 0.15, "create_500_after": 0.10, "create_drop_after": 0.10, "seed": 9}


def run_faults(drill: DrillStack, title: str, **config: object) -> None:
    drill.carrier.reset()
    drill.carrier.configure(faults=FAULTS, **config)
    reconciles_before = drill.task_results("calls.reconcile")
    numbers = [factories.phone_number() for _ in range(NUMBERS)]
    started = time.monotonic()
    batch_id = drill.place_batch(numbers)

    drill.wait_for_batch(batch_id, NUMBERS, timeout=150)
    outcome = drill.outcome(batch_id, numbers)
    money = drill.wait_for_settled_credits()
    served = drill.carrier.http.get("/sandbox/faults").json()
    report(
        title,
        {
            **outcome.figures(),
            "faults served": served,
            "batch placed to completed": f"{time.monotonic() - started:.1f} s",
            "reconciles": dict(drill.task_results("calls.reconcile") - reconciles_before),
            "credits": money,
        },
    )
    assert outcome.repeats == {}
    assert outcome.missing == 0
    assert outcome.counts == {"completed": NUMBERS}  # none owed, none left dialing
    assert money["balance"] == money["ledger"] == CREDITS - money["charged"]


def test_carrier_faults(drill: DrillStack) -> None:
    run_faults(drill, "carrier faults (15% 429, 10% created then 500, 10% created then dropped)")


def test_carrier_faults_with_calls_held_queued(drill: DrillStack) -> None:
    """The same faults, with the carrier placing calls at 8 a second and holding the rest
    queued (no start_time, no callbacks), as Twilio does over an account's calls per second:
    an ambiguous call is still queued when its grace period ends, and reconcile must find it."""
    run_faults(
        drill, "carrier faults, calls held queued over 8 calls/s at the carrier", CALLS_PER_SECOND=8
    )
