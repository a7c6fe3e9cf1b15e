"""A batch that waits for its start and goes by itself, with a real worker, beat and the sandbox
carrier: no call reaches the carrier before its startAt, every call is placed after it."""

from collections import Counter
from datetime import datetime, timedelta

from shared.models import utcnow
from tests import factories
from tests.stack import Api, Carrier, StackProcesses, wait_until


def test_a_batch_waits_for_its_start_and_then_calls_by_itself(
    api: Api, carrier: Carrier, stack: StackProcesses
) -> None:
    numbers = [factories.phone_number() for _ in range(5)]
    start = utcnow() + timedelta(seconds=4)
    accepted = api.post(
        "/api/make_batch_toingg",
        json={
            "campaign": "welcome",
            "numberList": [{"clientNumber": number} for number in numbers],
            "startAt": start.isoformat(),
        },
    )
    assert accepted.status_code == 200, accepted.text
    batch_id = accepted.json()["batchId"]
    shown = api.get(f"/api/batches/{batch_id}").json()
    assert shown["counts"] == {"scheduled": 5}
    assert datetime.fromisoformat(shown["nextHoursOpenAt"]) == start

    def counts() -> Counter[str]:
        return Counter(api.get(f"/api/batches/{batch_id}").json()["counts"])

    wait_until(lambda: counts() == {"completed": 5}, 60, message="the batch started and ended")
    calls = api.get("/api/calls", batch=batch_id, limit=10).json()["items"]
    assert sorted(call["phoneNumber"] for call in calls) == sorted(numbers)
    for call in calls:
        assert datetime.fromisoformat(call["dialedAt"]) >= start, call
