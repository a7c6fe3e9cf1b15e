"""Pieces of the test stack: servers in threads, worker and beat processes, a clean database."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import uvicorn
from celery import Celery
from celery.events.receiver import EventReceiver
from sqlalchemy import create_engine, text

from shared import migrate


def reset_database(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    migrate.upgrade(url)


class ServerThread:
    """An ASGI app served by uvicorn on a loopback port, in a background thread."""

    def __init__(self, app: object, port: int, limit_concurrency: int | None = None) -> None:
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            limit_concurrency=limit_concurrency,
            http="h11",  # as `toingg api` serves it
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.port = port

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"server on port {self.port} did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class ServerProcess:
    """A server in its own process, started the way `toingg` starts it, so it does not share a
    GIL with the tests and the API (the carrier plays every call's life and its callbacks)."""

    def __init__(
        self, args: list[str], health_url: str, log: Path, env: dict[str, str] | None = None
    ) -> None:
        self.args, self.health_url, self.log, self.env = args, health_url, log, env
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "shared.cli", *self.args],
            stdout=open(self.log, "ab"),  # noqa: SIM115 (the child keeps it)
            stderr=subprocess.STDOUT,
            env=self.env,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.args} exited; see {self.log}")
            try:
                if httpx.get(self.health_url, timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.health_url} did not answer within {timeout:g} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()


class StackProcesses:
    """Celery worker and beat processes, started the way `toingg` starts them."""

    def __init__(
        self, tmp: Path, env: dict[str, str] | None = None, start_timeout: float = 90
    ) -> None:
        self.tmp = tmp
        self.env = {**os.environ, **(env or {})}
        self.start_timeout = start_timeout  # a worker's imports take long on a busy machine
        self.workers: list[subprocess.Popen[bytes]] = []
        self.beat: subprocess.Popen[bytes] | None = None
        self.broker: Celery | None = None

    def _spawn(self, *args: str, log_name: str) -> subprocess.Popen[bytes]:
        log = open(self.tmp / log_name, "ab")  # noqa: SIM115 (the child keeps it)
        return subprocess.Popen(
            [sys.executable, "-m", "shared.cli", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
        )

    def start_worker(self, concurrency: int = 8) -> subprocess.Popen[bytes]:
        [process] = self.start_workers(1, concurrency)
        return process

    def start_workers(
        self, count: int, concurrency: int = 8, command: tuple[str, ...] | None = None
    ) -> list[subprocess.Popen[bytes]]:
        """Side by side, each with `concurrency` threads (or each started by the `toingg`
        command given); returns once all answer a ping."""
        started = []
        for _ in range(count):
            log_name = f"worker-{len(self.workers)}.log"
            args = command or ("worker", "--concurrency", str(concurrency))
            started.append(self._spawn(*args, log_name=log_name))
            self.workers.append(started[-1])
        self._wait_for_workers(len([w for w in self.workers if w.poll() is None]))
        return started

    def _wait_for_workers(self, count: int) -> None:
        # Asked on the broker these processes were given (the drills give them their own).
        if self.broker is None:
            self.broker = Celery("toingg", broker=self.env["REDIS_URL"])
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            replies = self.broker.control.ping(timeout=0.5) or []
            if len(replies) >= count:
                return
        raise RuntimeError(
            f"{count} worker(s) did not answer a ping within {self.start_timeout:g} s"
        )

    def stop_worker(self, process: subprocess.Popen[bytes]) -> None:
        """A warm shutdown, as an orchestrator scaling workers down sends it."""
        process.terminate()
        process.wait(timeout=60)

    def kill_worker(self, process: subprocess.Popen[bytes]) -> None:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def start_beat(self) -> None:
        """Beat, once it has opened its schedule (it sends its first tasks right after): a test
        that waits on the dispatcher or the settler must not spend its time on beat's start."""
        schedule = self.tmp / f"beat-{time.monotonic_ns()}"
        self.beat = self._spawn("beat", "--schedule", str(schedule), log_name="beat.log")
        deadline = time.monotonic() + self.start_timeout
        while not list(self.tmp.glob(f"{schedule.name}*")):
            if time.monotonic() > deadline or self.beat.poll() is not None:
                log = self.tmp / "beat.log"
                raise RuntimeError(f"beat did not start within {self.start_timeout:g} s; see {log}")
            time.sleep(0.1)

    def stop_all(self) -> None:
        for process in [*self.workers, self.beat]:
            if process is not None and process.poll() is None:
                process.terminate()
        for process in [*self.workers, self.beat]:
            if process is None:
                continue
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        self.workers.clear()


def wait_until(predicate, timeout: float, interval: float = 0.1, message: str = "") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"not true within {timeout} s: {message}")


class Api:
    """The API as a client sees it: HTTP with an API key."""

    def __init__(self, base_url: str, api_key: str, account_id: str = "") -> None:
        self.http = httpx.Client(base_url=base_url, timeout=30)
        self.api_key = api_key
        self.account_id = account_id

    def post(self, path: str, json: object = None, **params: str) -> httpx.Response:
        return self.http.post(path, json=json, params={"apiKey": self.api_key, **params})

    def get(self, path: str, **params: object) -> httpx.Response:
        return self.http.get(path, params={"apiKey": self.api_key, **params})


class Carrier:
    """The sandbox carrier's control API."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=30)

    def calls(self, to: str | None = None) -> list[dict]:  # type: ignore[type-arg]
        calls = self.http.get("/sandbox/calls").json()
        return [c for c in calls if to is None or c["to"] == to]

    def messages(self) -> list[dict]:  # type: ignore[type-arg]
        return self.http.get("/sandbox/messages").json()

    def configure(self, **config: object) -> None:
        self.http.post("/sandbox/config", json=config).raise_for_status()

    def reset(self) -> None:
        self.http.post("/sandbox/reset").raise_for_status()


class _Receiver(EventReceiver):
    def __init__(self, *args: object, consuming: threading.Event, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.consuming = consuming

    def on_consume_ready(self, *args: object, **kwargs: object) -> None:
        self.consuming.set()


class TaskEvents:
    """The task events on the broker, as Flower reads them: every task published (task-sent,
    from whichever process sent it) and how each run ended. Recorded while the block runs."""

    def __init__(self, broker_url: str) -> None:
        self.app = Celery("toingg", broker=broker_url)
        self.events: list[dict] = []  # type: ignore[type-arg]
        self._consuming = threading.Event()
        self._thread = threading.Thread(target=self._capture, daemon=True)
        self._receiver: _Receiver | None = None

    def _capture(self) -> None:
        with self.app.connection() as connection:
            self._receiver = _Receiver(
                connection,
                handlers={"*": self.events.append},
                app=self.app,
                consuming=self._consuming,
            )
            self._receiver.capture(limit=None, timeout=None, wakeup=False)

    def __enter__(self) -> "TaskEvents":
        self._thread.start()
        if not self._consuming.wait(15):
            raise RuntimeError("the event receiver did not start")
        # Subscribed once an event of our own comes back.
        with self.app.events.default_dispatcher() as dispatcher:
            wait_until(
                lambda: dispatcher.send("task-probe") is None and self.of_type("task-probe"),
                15,
                interval=0.2,
                message="the event receiver is subscribed",
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._receiver is not None:
            self._receiver.should_stop = True
        self._thread.join(timeout=10)

    def of_type(self, type_: str) -> list[dict]:  # type: ignore[type-arg]
        return [e for e in list(self.events) if e["type"] == type_]

    def sent(self, name: str) -> list[dict]:  # type: ignore[type-arg]
        """The tasks named `name` published so far, retries included."""
        return [e for e in self.of_type("task-sent") if e.get("name") == name]

    def ended(self, task_id: str) -> dict | None:  # type: ignore[type-arg]
        """How the task's run ended (task-succeeded with its result, or task-failed), once it
        has."""
        for event in self.of_type("task-succeeded") + self.of_type("task-failed"):
            if event["uuid"] == task_id:
                return event
        return None
