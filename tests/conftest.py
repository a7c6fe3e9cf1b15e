"""The test stack: a real PostgreSQL (TEST_DATABASE_URL, or an embedded server), a real
Redis (REDIS_URL, or an embedded redis-server), the sandbox carrier and the API served over HTTP,
and real Celery worker and beat processes where a test crosses the queue.

Settings are environment variables, set here before anything reads them, so the worker and beat
subprocesses see the same stack as the tests.
"""

import atexit
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

_TMP = Path(tempfile.mkdtemp(prefix="toingg-tests-"))
if not os.environ.get("TOINGG_KEEP_TEST_DIR"):
    atexit.register(shutil.rmtree, _TMP, ignore_errors=True)


def _free_port() -> int:
    from shared.embedded_redis import free_port

    return free_port()


def _configure_environment() -> None:
    os.environ["ENVIRONMENT"] = "development"
    if os.environ.get("TEST_DATABASE_URL"):
        os.environ["DATABASE_URL"] = os.environ["TEST_DATABASE_URL"]
    else:
        from shared import embedded_postgres

        process, url = embedded_postgres.start(_TMP / "postgres", durable=False)
        atexit.register(embedded_postgres.stop, process)
        os.environ["DATABASE_URL"] = url
    if not os.environ.get("REDIS_URL"):
        from shared import embedded_redis

        process, url = embedded_redis.start(_TMP / "redis", persist=False)
        atexit.register(process.kill)
        os.environ["REDIS_URL"] = url
    os.environ["TEST_API_PORT"] = str(_free_port())
    os.environ["TEST_CARRIER_PORT"] = str(_free_port())
    os.environ["PUBLIC_BASE_URL"] = f"http://127.0.0.1:{os.environ['TEST_API_PORT']}"
    os.environ["TWILIO_API_BASE"] = f"http://127.0.0.1:{os.environ['TEST_CARRIER_PORT']}"
    os.environ["SANDBOX_PORT"] = os.environ["TEST_CARRIER_PORT"]
    os.environ["STRIPE_SECRET_KEY"] = "sk_test_sandbox"
    os.environ["STRIPE_API_BASE"] = f"{os.environ['TWILIO_API_BASE']}/stripe"
    # Short grace periods, so recovery from a killed worker is seen in seconds.
    os.environ["DIAL_AMBIGUOUS_SECONDS"] = "8"
    os.environ["RATE_MAX_WAIT_SECONDS"] = "2"
    os.environ["TWILIO_TIMEOUT_SECONDS"] = "5"
    # Tests poll hard; the rate-limit tests give their own accounts tighter buckets.
    os.environ["API_RATE_PER_SECOND"] = "1000"
    os.environ["API_BURST"] = "1000"
    os.environ["API_BAD_KEY_BURST"] = "1000"
    # Lines are tested with their own small limit; elsewhere they must not pace the tests.
    os.environ["MAX_CONCURRENT_CALLS"] = "1000"
    os.environ["DIAL_RATE_PER_SECOND"] = "200"
    os.environ["DIAL_BURST"] = "20"
    os.environ["SMS_RATE_PER_SECOND"] = "200"
    # The tests' wall clock may be any hour: calling hours are tested with a clock of their own
    # (tests/api/test_calling_hours.py), and elsewhere must not hold calls back.
    os.environ["CALLING_HOURS"] = "00:00-24:00"
    os.environ["CALLING_RULES"] = "false"
    # Tests call the sandbox's few numbers many times a day; the caps are tested on their own.
    os.environ["MAX_CALLS_PER_NUMBER_PER_DAY"] = "1000"
    os.environ["SANDBOX_RING_SECONDS"] = "0.3"
    os.environ["SANDBOX_TALK_SECONDS"] = "0.5"
    os.environ["SANDBOX_SMS_DELIVERY_SECONDS"] = "0.3"


_configure_environment()

from shared.config import get_settings  # noqa: E402
from shared.db import get_engine  # noqa: E402
from tests.stack import Carrier, ServerProcess, ServerThread, StackProcesses, reset_database  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def database() -> Iterator[None]:
    reset_database(get_settings().database_url)
    yield
    get_engine().dispose()


@pytest.fixture(scope="session", autouse=True)
def clean_redis() -> None:
    from shared.redis_client import get_redis

    get_redis().flushdb()


@pytest.fixture(scope="session")
def api_server() -> Iterator[str]:
    from api.main import MAX_CONCURRENT_REQUESTS, create_app

    server = ServerThread(
        create_app(), int(os.environ["TEST_API_PORT"]), limit_concurrency=MAX_CONCURRENT_REQUESTS
    )
    server.start()
    yield get_settings().PUBLIC_BASE_URL
    server.stop()


@pytest.fixture(scope="session")
def carrier_server() -> Iterator[str]:
    url = get_settings().TWILIO_API_BASE
    server = ServerProcess(["sandbox"], f"{url}/sandbox/health", _TMP / "sandbox.log")
    server.start()
    yield url
    server.stop()


@pytest.fixture(scope="module")
def stack(api_server: str, request: pytest.FixtureRequest) -> Iterator[StackProcesses]:
    """A real Celery worker and beat, as separate processes, for one test module (with the
    module's STACK_ENV settings, if it has any)."""
    processes = StackProcesses(_TMP, env=getattr(request.module, "STACK_ENV", {}))
    processes.start_worker()
    processes.start_beat()
    yield processes
    processes.stop_all()


@pytest.fixture
def carrier(carrier_server: str) -> Iterator[Carrier]:
    carrier = Carrier(carrier_server)
    carrier.reset()
    yield carrier
    carrier.reset()


_lock = threading.Lock()
_counter = [0]


def unique(prefix: str) -> str:
    with _lock:
        _counter[0] += 1
        return f"{prefix}-{_counter[0]}-{time.monotonic_ns() % 10**6}"
