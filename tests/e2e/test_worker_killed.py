"""A worker killed with SIGKILL in the middle of a batch loses no number and rings none twice:
the database, not the broker, knows what is still owed (Redis would redeliver the dead worker's
unacknowledged messages only after visibility_timeout, an hour)."""

import time
from collections import Counter

from tests import factories
from tests.stack import Api, Carrier, StackProcesses, wait_until


class TestWorkerKilledMidBatch:
    def test_every_number_is_called_exactly_once_after_a_restart(
        self, api: Api, carrier: Carrier, stack: StackProcesses
    ) -> None:
        # Slow creations keep many dials in flight when the worker dies.
        carrier.configure(LATENCY_MS=150)
        numbers = [factories.phone_number() for _ in range(500)]
        rows = [{"clientName": f"c{i}", "clientNumber": n} for i, n in enumerate(numbers)]
        response = api.post(
            "/api/make_batch_toingg", json={"campaign": "welcome", "numberList": rows}
        )
        assert response.status_code == 200, response.text
        wanted = set(numbers)

        def dialled() -> list[str]:
            return [c["to"] for c in carrier.calls() if c["to"] in wanted]

        wait_until(lambda: len(dialled()) >= 100, 60, message="100 calls before the kill")
        [worker] = stack.workers
        stack.kill_worker(worker)
        at_kill = len(dialled())
        assert at_kill < 500, "the batch finished before the kill: nothing was tested"

        restarted = time.monotonic()
        stack.start_worker()
        wait_until(lambda: set(dialled()) == wanted, 300, interval=1, message="all 500 called")
        assert time.monotonic() - restarted < 300
        repeats = {n: k for n, k in Counter(dialled()).items() if k > 1}
        assert repeats == {}
        batch = api.get(f"/api/batches/{response.json()['batchId']}").json()
        assert batch["counts"].get("queued", 0) == 0
        assert batch["counts"].get("dialing", 0) == 0
