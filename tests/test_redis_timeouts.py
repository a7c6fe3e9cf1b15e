"""Redis that stops answering without closing the connection (a failover, a NAT or firewall
dropping it) makes a command fail after REDIS_SOCKET_TIMEOUT_SECONDS, in the product's own
client and in the broker's: without a timeout a worker would wait on it for ever."""

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from shared.config import get_settings
from shared.queue import get_celery
from shared.redis_client import connect


@pytest.fixture
def silent_redis() -> Iterator[str]:
    """Accepts connections and reads what it is sent, and never answers."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            held.append(connection)

    threading.Thread(target=serve, daemon=True).start()
    yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    server.close()
    for connection in held:
        connection.close()


def gives_up(command: Callable[[], object]) -> float:
    """Seconds until the command fails; the test fails if it has not within 20 s."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            command()
        except BaseException as exc:  # handed to the test's thread
            errors.append(exc)

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=20)
    assert not thread.is_alive(), "still waiting for a Redis that does not answer after 20 s"
    assert errors, "the command succeeded against a Redis that does not answer"
    return time.monotonic() - started


def test_the_products_client_gives_up(silent_redis: str) -> None:
    timeout = get_settings().REDIS_SOCKET_TIMEOUT_SECONDS
    assert gives_up(lambda: connect(silent_redis).ping()) < timeout + 3


def test_the_brokers_client_gives_up(silent_redis: str) -> None:
    def publish() -> None:
        with get_celery().connection_for_write(silent_redis) as connection:
            connection.default_channel.client.ping()

    assert gives_up(publish) < 2 * get_settings().REDIS_SOCKET_TIMEOUT_SECONDS + 3
