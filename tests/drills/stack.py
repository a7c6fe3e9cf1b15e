"""A whole stack of its own for a drill: the API, two Celery workers and beat, the sandbox
carrier, each a real process started as `toingg` starts it, and a Redis server on a fixed port
that the drill may kill and start again empty.

Its tables live in a schema of their own in the tests' database (libpq's PGOPTIONS sets the
processes' search_path), so its dispatcher sees only the drill's calls, and every connection of
its processes carries one application_name (PGAPPNAME), so a drill can terminate exactly those.
"""

import itertools
import os
import re
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session

from shared import embedded_redis
from shared.accounts import service as accounts_service
from tests.stack import Carrier, ServerProcess, StackProcesses, wait_until

SCHEMA = "toingg_drills"
APPLICATION_NAME = "toingg-drills"
DIAL_RATE = 20
CREDITS = 100_000
# Starting a process is mostly its imports: on a busy machine, a minute or more.
START_TIMEOUT = 180

# Short grace periods (as the suite's own), so recovery is seen in seconds: a claim whose task
# was lost is sent again after 10 s, a dial with no answer is looked up after 8 s.
DRILL_ENV = {
    "DIAL_RATE_PER_SECOND": str(DIAL_RATE),
    "DIAL_BURST": "2",
    "DISPATCH_STALE_SECONDS": "10",
    "DIAL_AMBIGUOUS_SECONDS": "8",
    "RATE_MAX_WAIT_SECONDS": "2",
    "TWILIO_TIMEOUT_SECONDS": "5",
    "MAX_CONCURRENT_CALLS": "1000",
    "SANDBOX_RING_SECONDS": "0.3",
    "SANDBOX_TALK_SECONDS": "0.5",
}


@dataclass
class Outcome:
    """What a batch came to, at the carrier and in the database."""

    numbers: int
    rung: int
    repeats: dict[str, int]
    missing: int
    counts: dict[str, int]
    seconds: float
    rate: float
    longest_pause: float
    per_ten_seconds: list[int]
    callbacks_refused: int

    def figures(self) -> dict[str, Any]:
        return {
            "numbers": self.numbers,
            "rung at the carrier": self.rung,
            "rung twice or more": len(self.repeats),
            "never rung": self.missing,
            "calls by status": self.counts,
            "first to last creation": f"{self.seconds:.1f} s",
            "achieved rate": f"{self.rate:.2f} calls/s (limit {DIAL_RATE}/s)",
            "longest pause between creations": f"{self.longest_pause:.1f} s",
            "creations in each 10 s": self.per_ten_seconds,
            "status callbacks the API did not take": self.callbacks_refused,
        }


class DrillStack:
    def __init__(self, tmp: Path, database_url: str, env: dict[str, str] | None = None) -> None:
        self.tmp = tmp
        self.database_url = database_url
        self.redis_port = embedded_redis.free_port()
        self.redis_process: subprocess.Popen[bytes] | None = None
        api_port, carrier_port = embedded_redis.free_port(), embedded_redis.free_port()
        self.api_url = f"http://127.0.0.1:{api_port}"
        self.carrier_url = f"http://127.0.0.1:{carrier_port}"
        self.env = {
            **os.environ,
            **DRILL_ENV,
            "DATABASE_URL": database_url,
            "PGOPTIONS": f"-c search_path={SCHEMA}",
            "PGAPPNAME": APPLICATION_NAME,
            "REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "PUBLIC_BASE_URL": self.api_url,
            "TWILIO_API_BASE": self.carrier_url,
            "SANDBOX_PORT": str(carrier_port),
            "STRIPE_API_BASE": f"{self.carrier_url}/stripe",
            **(env or {}),
        }
        # The tests' own connection to the drill's tables: another application_name, so a
        # drill that terminates the stack's connections leaves it alone.
        self.db: Engine = create_engine(
            database_url,
            connect_args={
                "options": f"-c search_path={SCHEMA}",
                "application_name": f"{APPLICATION_NAME}-test",
            },
            pool_pre_ping=True,
        )
        self.carrier = Carrier(self.carrier_url)
        self.http = httpx.Client(base_url=self.api_url, timeout=30)
        self.processes = StackProcesses(tmp, env=self.env, start_timeout=START_TIMEOUT)
        self.api_server = ServerProcess(
            ["api", "--host", "127.0.0.1", "--port", str(api_port)],
            f"{self.api_url}/api/health",
            tmp / "api.log",
            env=self.env,
        )
        self.carrier_server = ServerProcess(
            ["sandbox"], f"{self.carrier_url}/sandbox/health", tmp / "sandbox.log", env=self.env
        )
        self.api_key = ""

    # --- the stack -------------------------------------------------------------------------

    def start(self) -> None:
        """Every process at once (their imports take seconds each on a busy machine)."""
        with self.db.begin() as connection:
            connection.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
            connection.execute(text(f"CREATE SCHEMA {SCHEMA}"))
        self.start_redis()
        with ThreadPoolExecutor() as pool:
            started = [
                pool.submit(self.cli, "db", "upgrade"),
                pool.submit(self.carrier_server.start, START_TIMEOUT),
                pool.submit(self.api_server.start, START_TIMEOUT),
                pool.submit(self.processes.start_workers, 2),
            ]
            for future in started:
                future.result()
        self.processes.start_beat()
        with Session(self.db) as session:
            _, key = accounts_service.create_account(session, "drills", CREDITS)
            session.commit()
        self.api_key = key.secret
        created = self.post("/api/campaigns", {"name": "drill", "script": "Hello {name}."})
        assert created.status_code == 201, created.text

    def stop(self) -> None:
        self.processes.stop_all()
        self.api_server.stop()
        self.carrier_server.stop()
        self.kill_redis()
        with self.db.begin() as connection:
            connection.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        self.db.dispose()

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "shared.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, f"toingg {' '.join(args)}: {done.stdout}{done.stderr}"
        return done.stdout

    def start_redis(self) -> None:
        """On the same port each time, with no append-only file: started again, it is empty."""
        self.redis_process, _ = embedded_redis.start(
            self.tmp / "redis", port=self.redis_port, persist=False
        )

    def kill_redis(self) -> None:
        if self.redis_process is not None and self.redis_process.poll() is None:
            self.redis_process.kill()
            self.redis_process.wait(timeout=10)

    def terminate_database_connections(self) -> int:
        """pg_terminate_backend on every connection of the stack's processes (and only
        theirs: this database, their application_name, never this one)."""
        with self.db.begin() as connection:
            return len(
                connection.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND application_name = :name "
                        "AND pid <> pg_backend_pid()"
                    ),
                    {"name": APPLICATION_NAME},
                ).all()
            )

    # --- the API, as a client ---------------------------------------------------------------

    def post(self, path: str, json: object = None, **params: str) -> httpx.Response:
        return self.http.post(path, json=json, params={"apiKey": self.api_key, **params})

    def get(self, path: str, **params: object) -> httpx.Response:
        return self.http.get(path, params={"apiKey": self.api_key, **params})

    def place_batch(self, numbers: list[str]) -> str:
        rows = [{"clientName": f"c{i}", "clientNumber": n} for i, n in enumerate(numbers)]
        response = self.post("/api/make_batch_toingg", {"campaign": "drill", "numberList": rows})
        assert response.status_code == 200, response.text
        assert response.json()["accepted"] == len(numbers)
        return str(response.json()["batchId"])

    def rung(self, numbers: set[str]) -> list[dict[str, Any]]:
        """The calls the carrier created to these numbers."""
        return [c for c in self.carrier.calls() if c["to"] in numbers]

    def batch(self, batch_id: str) -> dict[str, Any]:
        """The batch as the API shows it (read from the database directly while the API may be
        failing on purpose)."""
        with self.db.connect() as connection:
            rows = connection.execute(
                text("SELECT status, count(*) FROM calls WHERE batch_id = :b GROUP BY status"),
                {"b": batch_id},
            ).all()
        return {status: count for status, count in rows}

    def exited_workers(self) -> int:
        """Workers that exited by themselves (one the drill killed is no longer listed)."""
        return sum(1 for w in self.processes.workers if w.poll() is not None)

    def wait_for_batch(self, batch_id: str, total: int, timeout: float) -> None:
        """Until every call of the batch is final."""
        final = {"completed", "busy", "no-answer", "failed", "canceled"}

        def done() -> bool:
            return sum(n for s, n in self.batch(batch_id).items() if s in final) == total

        try:
            wait_until(done, timeout, interval=1)
        except AssertionError:
            raise AssertionError(f"not every call final: {self.batch(batch_id)}") from None
        response = self.get(f"/api/batches/{batch_id}")
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "completed", response.json()

    def outcome(self, batch_id: str, numbers: list[str]) -> Outcome:
        calls = self.rung(set(numbers))
        per_number = Counter(c["to"] for c in calls)
        created = sorted(c["created_at"] for c in calls)
        seconds = created[-1] - created[0] if len(created) > 1 else 0.0
        return Outcome(
            numbers=len(numbers),
            rung=len(calls),
            repeats={n: k for n, k in per_number.items() if k > 1},
            missing=len(set(numbers) - set(per_number)),
            counts=self.batch(batch_id),
            seconds=seconds,
            rate=(len(calls) - 1) / seconds if seconds else 0.0,
            longest_pause=max((b - a for a, b in itertools.pairwise(created)), default=0.0),
            per_ten_seconds=[
                sum(1 for t in created if start <= t - created[0] < start + 10)
                for start in range(0, int(seconds) + 1, 10)
            ],
            # Each delivery as the carrier last tried it: answered 2xx, or not taken at all.
            callbacks_refused=sum(
                1
                for c in calls
                for delivery in c["callbacks"]
                if not 200 <= (delivery["status_code"] or 0) < 300
            ),
        )

    def wait_for_settled_credits(self, timeout: float = 30) -> dict[str, int]:
        """Once every ended call is settled: the balance, what the ledger sums to, what was
        charged and what is still held. Nothing lost or doubled means balance = the ledger's
        sum = the credits given less what was charged, and nothing held."""

        def money() -> dict[str, int]:
            with self.db.connect() as connection:
                row = connection.execute(
                    text(
                        "SELECT (SELECT credits FROM accounts), "
                        "(SELECT coalesce(sum(delta), 0) FROM credit_ledger), "
                        "(SELECT coalesce(sum(credits_charged), 0) FROM calls), "
                        "(SELECT coalesce(sum(credits_reserved), 0) FROM calls)"
                    )
                ).one()
            return dict(zip(("balance", "ledger", "charged", "held"), row, strict=True))

        wait_until(lambda: money()["held"] == 0, timeout, interval=0.5, message="all settled")
        return money()

    # --- the workers' own account of what happened -------------------------------------------

    def task_results(self, task: str) -> Counter[str]:
        """How the workers' runs of a task ended, from their logs (Celery logs each return;
        a SID returned counts as "placed")."""
        pattern = re.compile(rf"Task {re.escape(task)}\[[^\]]+\] succeeded in [\d.]+s: '([^':]+)")
        results: Counter[str] = Counter()
        for match in pattern.finditer(self._worker_logs()):
            value = match.group(1)
            results["placed" if value.startswith("CA") else value.split(" CA")[0]] += 1
        return results

    def task_retries(self, task: str) -> int:
        return len(re.findall(rf"Task {re.escape(task)}\[[^\]]+\] retry:", self._worker_logs()))

    def _worker_logs(self) -> str:
        return "".join(log.read_text(errors="replace") for log in self.tmp.glob("worker-*.log"))
