"""Connections to the carrier are kept between requests, and not used again once long idle: a
server closes an idle connection after a while, and a create request written on it as it
closes is lost without an answer, ambiguous, and its call waits for reconcile."""

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from shared.telephony import deadline
from tests.telephony.test_deadline import create

# The carrier's own idle timeout here, and the client's, below it.
CARRIER_IDLE_SECONDS = 0.5
CLIENT_IDLE_SECONDS = 0.25


class ClosingCarrier:
    """Answers each create request with a call, on a kept connection; a request arriving on a
    connection idle longer than CARRIER_IDLE_SECONDS finds it closing, and gets no answer."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.connections = 0
        self.unanswered = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection: socket.socket) -> None:
        answered_at: float | None = None
        with connection:
            while _read_request(connection):
                arrived = time.monotonic()
                if answered_at is not None and arrived - answered_at > CARRIER_IDLE_SECONDS:
                    self.unanswered += 1
                    return
                body = json.dumps({"sid": f"CA{self.connections:032d}", "status": "queued"})
                connection.sendall(
                    b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n{body}".encode()
                )
                answered_at = time.monotonic()

    def close(self) -> None:
        self.server.close()


def _read_request(connection: socket.socket) -> bool:
    """One whole request read; False when the client closed the connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            return False
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += connection.recv(65536)
    return True


@pytest.fixture
def carrier(monkeypatch: pytest.MonkeyPatch) -> Iterator[ClosingCarrier]:
    monkeypatch.setattr(deadline, "IDLE_REUSE_SECONDS", CLIENT_IDLE_SECONDS)
    carrier = ClosingCarrier()
    yield carrier
    carrier.close()


def create_at(carrier: ClosingCarrier) -> None:
    create(carrier.url, datetime.now(UTC) + timedelta(seconds=3))


def test_requests_close_together_share_one_connection(carrier: ClosingCarrier) -> None:
    create_at(carrier)
    create_at(carrier)
    assert (carrier.connections, carrier.unanswered) == (1, 0)


def test_a_request_after_a_long_idle_opens_a_new_connection_and_is_answered(
    carrier: ClosingCarrier,
) -> None:
    create_at(carrier)
    time.sleep(CARRIER_IDLE_SECONDS + 0.2)
    create_at(carrier)  # on the kept connection it would be lost: TwilioUnavailable, maybe sent
    assert (carrier.connections, carrier.unanswered) == (2, 0)
