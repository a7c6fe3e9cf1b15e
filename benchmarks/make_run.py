"""`make run`'s own stack at DIAL_RATE_PER_SECOND=20: `toingg run` on its embedded defaults
(embedded PostgreSQL and Redis, one worker, the sandbox carrier playing every call's life), every
other setting as a new user finds it. A funded account calls a 1,200-number batch; prints the dial
rate from the first creation to the last (each call's dialedAt) against the 20 a second set.

    .venv/bin/python -m benchmarks.make_run      # ~2 minutes
"""

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.harness import dialed_at, numbers
from shared import embedded_redis

RATE, COUNT = 20, 1200


def _toingg(cwd: Path, env: dict[str, str], *args: str) -> str:
    argv = [sys.executable, "-m", "shared.cli", *args]
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=True).stdout


def _wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer")


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="toingg-make-run-"))
    # A new user's shell: no database, Redis or carrier of their own, only the rate.
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["DIAL_RATE_PER_SECOND"] = str(RATE)
    # The rate at whatever hour it runs: no call waits for its calling hours.
    env["CALLING_HOURS"], env["CALLING_RULES"] = "00:00-24:00", "false"
    port, sandbox_port, flower_port = (embedded_redis.free_port() for _ in range(3))
    ports = ["--port", str(port), "--sandbox-port", str(sandbox_port)]
    log = open(home / "run.log", "wb")  # noqa: SIM115 (the child keeps it)
    stack = subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "run", *ports, "--flower-port", str(flower_port)],
        cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        _wait_ready(f"http://127.0.0.1:{port}/api/ready", stack)
        created = _toingg(
            home, env, "accounts", "create", "--name", "rate", "--credits", "100000", "--json"
        )
        account = json.loads(created)
        api = httpx.Client(
            base_url=f"http://127.0.0.1:{port}", params={"apiKey": account["apiKey"]}, timeout=120
        )
        api.post("/api/campaigns", json={"name": "rate", "script": "Hello {name}"})
        rows = [{"clientName": "n", "clientNumber": n} for n in numbers(COUNT)]
        batch = api.post("/api/make_batch_toingg", json={"campaign": "rate", "numberList": rows})
        batch_id = batch.json()["batchId"]
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            shown = api.get(f"/api/batches/{batch_id}").json()
            if shown["status"] in ("completed", "canceled"):
                break
            time.sleep(2)
        times = dialed_at(api, batch_id, COUNT)
        span = times[-1] - times[0]
        rate = (len(times) - 1) / span
        print(f"batch {shown['status']}: {shown['counts']}")
        pause = max(b - a for a, b in itertools.pairwise(times))
        print(f"dialed {len(times)} of {COUNT} in {span:.1f} s, longest pause {pause:.2f} s")
        print(f"average {rate:.2f} calls/s against {RATE}/s: ratio {rate / RATE:.3f}")
    finally:
        stack.send_signal(signal.SIGINT)
        try:
            stack.wait(timeout=60)
        except subprocess.TimeoutExpired:
            stack.kill()
        if not os.environ.get("TOINGG_KEEP_BENCH_DIR"):
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
