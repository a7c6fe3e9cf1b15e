"""A call creation ends by its deadline, whatever the carrier does: requests' own timeouts are
per phase, so an answer that trickles in a byte at a time would hold the worker for as long as
the carrier likes."""

import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from shared.telephony import client as twilio


class TricklingCarrier:
    """Accepts a request, then answers one byte every 0.2 s, never finishing."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.requests = 0
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection: socket.socket) -> None:
        with connection:
            connection.recv(65536)
            self.requests += 1
            try:
                connection.sendall(b"HTTP/1.1 201 Created\r\nX-Slow: ")
                while not self.stop.wait(0.2):
                    connection.sendall(b"a")
            except OSError:
                return

    def close(self) -> None:
        self.stop.set()
        self.server.close()


@pytest.fixture
def trickling() -> Iterator[TricklingCarrier]:
    carrier = TricklingCarrier()
    yield carrier
    carrier.close()


def create(carrier_url: str, ends_by: datetime) -> twilio.RemoteCall:
    """A call creation as the dial task sends it, to the carrier at `carrier_url`, on the
    calling thread's client."""
    client = twilio.get_client()
    original, client.api.base_url = client.api.base_url, carrier_url
    try:
        return twilio.create_call(
            to="+14155552671",
            from_="+15005550006",
            url="http://127.0.0.1/voice",
            status_callback="http://127.0.0.1/status",
            timeout=30,
            time_limit=300,
            ends_by=ends_by,
        )
    finally:
        client.api.base_url = original


def test_an_answer_that_trickles_is_cut_at_the_deadline_and_is_ambiguous(
    trickling: TricklingCarrier,
) -> None:
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            create(trickling.url, datetime.now(UTC) + timedelta(seconds=1.5))
        except BaseException as exc:  # handed to the test's thread
            outcome.append(exc)

    started = time.monotonic()
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive(), "the create request outlived its deadline by 8 s"
    assert time.monotonic() - started < 4
    [error] = outcome
    assert isinstance(error, twilio.TwilioUnavailable) and error.maybe_sent
    assert trickling.requests == 1


def test_a_request_past_its_deadline_is_never_sent(trickling: TricklingCarrier) -> None:
    with pytest.raises(twilio.TwilioUnavailable) as error:
        create(trickling.url, datetime.now(UTC) - timedelta(seconds=1))
    assert not error.value.maybe_sent
    time.sleep(0.3)
    assert trickling.requests == 0
