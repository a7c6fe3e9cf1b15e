"""Batch ingest: the time for the API to accept a 100,000-number batch (against a bare FastAPI
endpoint parsing the same body, served the same way), and the API process's and a worker's
peak memory during it against their idle memory.

    .venv/bin/python -m benchmarks.batch_ingest   # PostgreSQL and Redis on this machine by default
"""

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx

from benchmarks.harness import Stack, numbers
from shared.embedded_redis import free_port

COUNT = 100_000
BARE_APP = """
from fastapi import FastAPI
from shared.batches.schemas import BatchRequest
app = FastAPI()
@app.post("/batch")
def batch(body: BatchRequest) -> dict:
    return {"accepted": len(body.numberList)}
"""


def memory_kib(pid: int) -> tuple[int, int]:
    """(current RSS, peak RSS) of a process, from /proc."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def bare_endpoint_seconds(body: bytes) -> float:
    port = free_port()
    module = Path("/tmp/toingg_bare_batch.py")
    module.write_text(BARE_APP)
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "toingg_bare_batch:app", "--port", str(port),
         "--log-level", "warning", "--app-dir", "/tmp"],
    )  # fmt: skip
    try:
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}/docs", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        started = time.perf_counter()
        response = httpx.post(
            f"http://127.0.0.1:{port}/batch",
            content=body,
            headers={"Content-Type": "application/json"},
            timeout=300,
        )
        response.raise_for_status()
        return time.perf_counter() - started
    finally:
        process.terminate()
        process.wait()


def main() -> None:
    rows = [{"clientName": f"client {i}", "clientNumber": n} for i, n in enumerate(numbers(COUNT))]
    body = json.dumps({"campaign": "bench", "numberList": rows}).encode()
    stack = Stack(workers=1, concurrency=16, DIAL_RATE_PER_SECOND="50", DIAL_BURST="5")
    try:
        stack.start()
        key = stack.account()
        api = httpx.Client(base_url=stack.api_url, params={"apiKey": key}, timeout=600)
        api.post("/api/campaigns", json={"name": "bench", "script": "Hello {name}"})
        time.sleep(2)
        api_pid, worker_pid = stack.processes["api"].pid, stack.processes["worker-0"].pid
        api_idle, _ = memory_kib(api_pid)
        worker_idle, _ = memory_kib(worker_pid)
        started = time.perf_counter()
        response = api.post(
            "/api/make_batch_toingg", content=body, headers={"Content-Type": "application/json"}
        )
        accept_seconds = time.perf_counter() - started
        assert response.status_code == 200, response.text[:500]
        assert response.json()["accepted"] == COUNT
        time.sleep(10)  # the dispatcher and workers at work on the batch
        _, api_peak = memory_kib(api_pid)
        _, worker_peak = memory_kib(worker_pid)
    finally:
        stack.stop()
    bare = bare_endpoint_seconds(body)
    print(f"{COUNT} numbers ({len(body) / 1e6:.1f} MB of JSON)")
    print(
        f"API accepted the batch in {accept_seconds:.2f} s; a bare FastAPI endpoint parsing the "
        f"same body took {bare:.2f} s"
    )
    print(
        f"API memory: idle {api_idle / 1024:.0f} MiB, peak {api_peak / 1024:.0f} MiB; "
        f"worker: idle {worker_idle / 1024:.0f} MiB, peak {worker_peak / 1024:.0f} MiB"
    )
    print(
        f"ratio: accept time / bare parse {accept_seconds / bare:.2f}; "
        f"API peak/idle memory {api_peak / api_idle:.2f}; "
        f"worker peak/idle memory {worker_peak / worker_idle:.2f}"
    )


if __name__ == "__main__":
    main()
