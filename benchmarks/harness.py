"""A whole stack for a benchmark, in processes started the way `toingg` starts them: the
sandbox carrier, the API, N workers (and a webhook worker beside them) and beat, on
DATABASE_URL and REDIS_URL (PostgreSQL and Redis on this machine by default), all on
loopback."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx

from shared import embedded_redis, migrate
from shared.cli.stack import webhook_worker_argv
from shared.queue import WORK_QUEUES


class Stack:
    def __init__(self, workers: int = 1, concurrency: int = 16, **settings: str) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="toingg-bench-"))
        api_port, sandbox_port = embedded_redis.free_port(), embedded_redis.free_port()
        self.api_url = f"http://127.0.0.1:{api_port}"
        self.carrier_url = f"http://127.0.0.1:{sandbox_port}"
        self.env = {
            **os.environ,
            "DATABASE_URL": os.environ.get(
                "DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
            ),
            "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
            "PUBLIC_BASE_URL": self.api_url,
            "TWILIO_API_BASE": self.carrier_url,
            "SANDBOX_PORT": str(sandbox_port),
            "SANDBOX_RING_SECONDS": "0.5",
            "SANDBOX_TALK_SECONDS": "1",
            "API_RATE_PER_SECOND": "100000",
            "API_BURST": "100000",
            "MAX_CONCURRENT_CALLS": "100000",
            # The benchmarks measure the pace, at whatever hour they run: no call waits for its
            # calling hours, and the same numbers may be called run after run.
            "CALLING_HOURS": "00:00-24:00",
            "CALLING_RULES": "false",
            "MAX_CALLS_PER_NUMBER_PER_DAY": "1000000",
            **settings,
        }
        self.workers, self.concurrency, self.api_port = workers, concurrency, api_port
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def _spawn(self, name: str, *argv: str) -> subprocess.Popen[bytes]:
        log = open(self.tmp / f"{name}.log", "wb")  # noqa: SIM115 (the child keeps it)
        process = subprocess.Popen(argv, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.processes[name] = process
        return process

    def reset(self) -> None:
        import redis
        from sqlalchemy import create_engine, text

        redis.Redis.from_url(self.env["REDIS_URL"]).flushdb()
        url = self.env["DATABASE_URL"]
        if url.startswith("postgresql"):
            engine = create_engine(url)
            with engine.begin() as connection:
                connection.execute(text("DROP SCHEMA public CASCADE"))
                connection.execute(text("CREATE SCHEMA public"))
            engine.dispose()
        migrate.upgrade(url)

    def start(self, worker_app: str | None = None) -> None:
        self.reset()
        python = sys.executable
        self._spawn("sandbox", *self.carrier_priority(), python, "-m", "sandbox")
        self._spawn(
            "api", python, "-m", "uvicorn", "api.main:create_app", "--factory",
            "--host", "127.0.0.1", "--port", str(self.api_port), "--no-access-log",
            "--log-level", "warning", "--http", "h11",  # as `toingg api` serves it
        )  # fmt: skip
        for n in range(self.workers):
            self.start_worker(n, worker_app)
        if self.workers:
            # As deployed: webhook delivery in a worker of its own (shared.queue.WEBHOOK_QUEUE).
            self._spawn("webhooks", *webhook_worker_argv("bench-webhooks@%h"), "--loglevel=WARNING")
        self._spawn(
            "beat", python, "-m", "celery", "-A", "workers.celery_app", "beat",
            f"--schedule={self.tmp / 'beat'}",
        )  # fmt: skip
        self._wait_http(f"{self.api_url}/api/health")
        self._wait_http(f"{self.carrier_url}/sandbox/health")

    @staticmethod
    def carrier_priority() -> list[str]:
        """The sandbox stands in for Twilio, which runs on machines of its own: given the CPU
        first, it stamps each request when it arrives, not when a process starved by the stack
        under test gets to it (on two shared cores that bunched a second's arrivals by half).
        Only root may raise a priority; otherwise the carrier runs as it is."""
        return ["nice", "-n", "-15"] if os.geteuid() == 0 else []

    def start_worker(self, n: int, worker_app: str | None = None) -> None:
        self._spawn(
            f"worker-{n}", sys.executable, "-m", "celery", "-A", worker_app or "workers.celery_app",
            "worker", "--pool=threads", f"--concurrency={self.concurrency}",
            f"--queues={','.join(WORK_QUEUES)}", f"--hostname=bench-{n}@%h", "--loglevel=WARNING",
        )  # fmt: skip

    def _wait_http(self, url: str) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{url} did not answer")

    def account(self, credits: int = 10_000_000) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "shared.cli", "accounts", "create", "--name", "bench",
             "--credits", str(credits), "--json"],
            env=self.env, capture_output=True, check=True, text=True,
        )  # fmt: skip
        import json

        return str(json.loads(out.stdout)["apiKey"])

    def carrier_calls(self) -> list[dict]:  # type: ignore[type-arg]
        return list(httpx.get(f"{self.carrier_url}/sandbox/calls", timeout=60).json())

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        if not os.environ.get("TOINGG_KEEP_BENCH_DIR"):
            shutil.rmtree(self.tmp, ignore_errors=True)


def dialed_at(api: httpx.Client, batch_id: str, count: int) -> list[float]:
    """When each call's create request left its worker (the API's dialedAt), in unix seconds."""
    times: list[float] = []
    for offset in range(0, count, 500):
        page = api.get("/api/calls", params={"batch": batch_id, "limit": 500, "offset": offset})
        times += [
            datetime.fromisoformat(c["dialedAt"]).timestamp()
            for c in page.json()["items"]
            if c["dialedAt"]
        ]
    return sorted(times)


def owed(api: httpx.Client, batch_id: str) -> int:
    """The batch's calls not yet handed to the carrier: waiting to be dialled, or being dialled."""
    shown = api.get(f"/api/batches/{batch_id}")
    shown.raise_for_status()
    counts = shown.json()["counts"]
    return int(counts.get("queued", 0) + counts.get("scheduled", 0) + counts.get("dialing", 0))


def numbers(count: int, start: int = 2_000_000) -> list[str]:
    import phonenumbers

    out: list[str] = []
    n = start
    while len(out) < count:
        number = f"+1415{n:07d}"
        if phonenumbers.is_valid_number(phonenumbers.parse(number)):
            out.append(number)
        n += 1
    return out
