"""A worker outlives its broker's loss: Redis killed while tasks are running and the worker has
threads free (so its BRPOP is outstanding), then started again empty, three times over; the
worker stays up and takes tasks again once Redis is back.

Celery 5.7.0 exits there: after collect() has taken the lost connection apart, it closes the
connection again, and the second close restores the unacknowledged messages through a transport
that no longer has its connection (AttributeError: 'NoneType' object has no attribute
'hostname'). pyproject.toml keeps Celery below 5.7 for that."""

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery

from shared import embedded_redis
from shared.cli.stack import CELERY_APP, worker_argv
from shared.queue import QUEUES
from shared.redis_client import connect
from tests.stack import wait_until

OUTAGES = 3
HOLDING = 4
THREADS = 8  # more than HOLDING: the worker keeps asking the broker for more meanwhile


class Broker:
    """A Redis server of the test's own, killed and started again empty on the same port."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = embedded_redis.free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process, _ = embedded_redis.start(self.data_dir, port=self.port, persist=False)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def client(self) -> Celery:
        return Celery("tests", broker=self.url)

    def worker_answers(self) -> bool:
        try:
            return bool(self.client().control.ping(timeout=0.5))
        except Exception:  # Redis not back yet
            return False

    def count(self, key: str) -> int:
        return int(connect(self.url).get(key) or 0)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    broker = Broker(tmp_path / "redis")
    broker.start()
    yield broker
    broker.kill()


@pytest.fixture
def worker(broker: Broker, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """A worker as `toingg worker` starts it, running the test's app."""
    argv = worker_argv(THREADS, ",".join(QUEUES))
    argv[argv.index(CELERY_APP)] = "tests.broker_loss_app"
    log = tmp_path / "worker.log"
    process = subprocess.Popen(
        argv,
        stdout=open(log, "ab"),  # noqa: SIM115 (the child keeps it)
        stderr=subprocess.STDOUT,
        env={**os.environ, "REDIS_URL": broker.url},
    )
    try:
        wait_until(broker.worker_answers, 120, message="the worker answers a ping")
        yield process, log
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def test_a_worker_outlives_redis_restarted_empty_under_it(
    broker: Broker, worker: tuple[subprocess.Popen[bytes], Path]
) -> None:
    process, log = worker
    for outage in range(1, OUTAGES + 1):
        client = broker.client()
        for _ in range(HOLDING):
            client.send_task("tests.hold", args=[3.0], queue="default")
        wait_until(lambda: broker.count("tests:holding") >= HOLDING, 30, message="tasks running")
        broker.kill()
        time.sleep(1)  # down a while, as a restart takes
        broker.start()
        wait_until(
            lambda: process.poll() is not None or broker.worker_answers(),
            60,
            message=f"the worker answers again after outage {outage}",
        )
        assert process.poll() is None, f"the worker exited on outage {outage}; see {log}"
    broker.client().send_task("tests.mark", queue="default")
    wait_until(lambda: broker.count("tests:marked") == 1, 30, message="a task taken after")
