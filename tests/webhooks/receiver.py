"""A customer's webhook receiver: a local HTTP server that keeps every request and answers as
the test scripts it."""

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook


@dataclass(frozen=True)
class Received:
    at: float
    path: str
    headers: dict[str, str]
    body: str
    # The sender's port: requests over one connection share it.
    peer_port: int

    def verified_with(self, secret: str) -> dict:  # type: ignore[type-arg]
        """The body, if its signature verifies with the secret (raises otherwise)."""
        return Webhook(secret).verify(self.body, self.headers)  # type: ignore[no-any-return]


class Receiver:
    """Answers each request with `answer(request number)` (1 for the first): a status code, or
    None to hold the request open until `release()`. HTTP/1.0, a connection a request, unless
    `keep_alive` (HTTP/1.1, as most servers answer)."""

    def __init__(
        self, answer: Callable[[int], int | None] = lambda _n: 200, keep_alive: bool = False
    ) -> None:
        self.answer = answer
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self.released = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length).decode()
                with receiver.lock:
                    receiver.received.append(
                        Received(
                            time.monotonic(),
                            self.path,
                            dict(self.headers.items()),
                            body,
                            self.client_address[1],
                        )
                    )
                    number = len(receiver.received)
                status = receiver.answer(number)
                if status is None:
                    receiver.released.wait(60)
                    status = 200
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "Receiver":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()

    def release(self) -> None:
        self.released.set()

    def requests(self) -> list[Received]:
        with self.lock:
            return list(self.received)
