"""One webhook request: signed as the Standard Webhooks specification says, sent to the
address that was checked, ended within WEBHOOK_TIMEOUT_SECONDS as a whole, never redirected.

httpx's timeouts are per phase (the connect, each read), so a receiver that answers a byte at a
time could hold a request for as long as it likes; here every read and write gets only what is
left of the request's deadline. The connection goes to the address `addresses.target` checked,
whatever the name resolves to by then, while TLS still verifies the certificate for the URL's
own host name.

Connections are kept alive between requests to the same receiver: a new one for each request
cost the worker a TCP (and TLS) handshake and a client of its own, more CPU than the request.
They are kept per checked target (scheme, host, port and address), so a request only ever goes
over a connection to the address its own check gave, and the check still runs before each
request.
"""

import json
import math
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import certifi
import httpcore
import httpx
from standardwebhooks.webhooks import Webhook

from shared.webhooks import addresses

USER_AGENT = "Toingg-Webhooks/1"
# How long an idle connection is kept: under the idle timeouts receivers' servers commonly
# close one after (5 s and more), so a request seldom goes out on one the receiver is closing.
KEEPALIVE_SECONDS = 4.0
# Idle connections kept to one target: a worker process's senders, each with one request.
KEEPALIVE_CONNECTIONS = 32
# Targets whose connections are kept at once; past it the least recently used idle one's are
# closed.
KEPT_TARGETS = 256
# How much of an answer's body is read so that its connection can carry the next request; a
# longer body closes it instead.
BODY_READ_MAX = 64 * 1024


@dataclass(frozen=True)
class Message:
    """An event as every attempt sends it: the same id and body each time."""

    event_id: str
    body: str


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    latency_ms: int | None
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def message(
    event_id: str,
    event_type: str,
    created_at: datetime,
    data: dict[str, Any],
    *,
    subject_type: str,
    subject_id: str,
    sequence: int,
) -> Message:
    """The body the specification describes, {type, timestamp, data}, with the event's subject
    and its number among that subject's events as GET /api/events shows them: the data alone
    does not always name its subject (credits), and a receiver orders and deduplicates a
    subject's events by these without asking the API."""
    timestamp = created_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    body = json.dumps(
        {
            "type": event_type,
            "timestamp": timestamp,
            "subjectType": subject_type,
            "subjectId": subject_id,
            "sequence": sequence,
            "data": data,
        },
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return Message(event_id, body)


def headers(message: Message, secrets: list[str], now: datetime) -> dict[str, str]:
    """webhook-id, webhook-timestamp and webhook-signature: one v1 signature per secret,
    space-separated, so a receiver holding either secret of a rotation verifies it."""
    signatures = [Webhook(secret).sign(message.event_id, now, message.body) for secret in secrets]
    return {
        "webhook-id": message.event_id,
        "webhook-timestamp": str(math.floor(now.timestamp())),
        "webhook-signature": " ".join(signatures),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    def left(self, timeout: float | None, error: type[Exception]) -> float:
        remaining = self.at - time.monotonic()
        if remaining <= 0:
            raise error(f"no answer within {self.seconds:g} s")
        return remaining if timeout is None else min(timeout, remaining)


# The deadline of the request this thread is sending: a kept-alive connection outlives the
# request that opened it, so its reads and writes take the deadline of the one they serve.
_current: ContextVar[_Deadline | None] = ContextVar("webhook_deadline", default=None)


def _left(timeout: float | None, error: type[Exception]) -> float | None:
    deadline = _current.get()
    return timeout if deadline is None else deadline.left(timeout, error)


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self.inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self.inner.read(max_bytes, _left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.inner.write(buffer, _left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self.inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        left = _left(timeout, httpcore.ConnectTimeout)
        return _Stream(self.inner.start_tls(ssl_context, server_hostname, left))

    def get_extra_info(self, info: str) -> Any:
        return self.inner.get_extra_info(info)


class _PinnedBackend(httpcore.NetworkBackend):
    """Connects to the checked address, whichever host the request names."""

    def __init__(self, address: addresses.Address) -> None:
        self.address = address
        self.inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        # `host` is the URL's, which the client's requests are built from: the address
        # checked for it is connected to instead of whatever the name resolves to now.
        left = _left(timeout, httpcore.ConnectTimeout)
        stream = self.inner.connect_tcp(
            str(self.address), port, left, local_address, socket_options
        )
        return _Stream(stream)

    def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("webhooks go over TCP only")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@cache
def _ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle takes a tenth of a second: once per process, shared by every
    # thread's requests (an SSLContext may be).
    return ssl.create_default_context(cafile=certifi.where())


class _PinnedTransport(httpx.HTTPTransport):
    def __init__(self, address: addresses.Address) -> None:
        super().__init__(verify=_ssl_context(), trust_env=False)
        # httpx takes no network backend of its own; its pool is replaced by one with ours
        # (handle_request, which maps httpcore's errors to httpx's, is httpx's own). As many
        # connections as there are requests at once: the senders bound them.
        self._pool = httpcore.ConnectionPool(
            ssl_context=_ssl_context(),
            max_connections=None,
            max_keepalive_connections=KEEPALIVE_CONNECTIONS,
            keepalive_expiry=KEEPALIVE_SECONDS,
            network_backend=_PinnedBackend(address),
        )


# A client's key: what its connections were opened for. The host is the TLS name and the Host
# header; the address is where they go.
_Key = tuple[str, str, int, addresses.Address]


class _Kept:
    def __init__(self, key: _Key) -> None:
        self.client = httpx.Client(
            transport=_PinnedTransport(key[3]), follow_redirects=False, trust_env=False
        )
        self.users = 0
        self.idle_since = time.monotonic()


class _Clients:
    """A client, and its kept-alive connections, per checked target; a target idle for longer
    than its connections are kept, or the least recently used idle one past KEPT_TARGETS, is
    closed. One in use is never closed under its request."""

    def __init__(self, most: int) -> None:
        self.most = most
        self.kept: OrderedDict[_Key, _Kept] = OrderedDict()
        self.lock = threading.Lock()

    @contextmanager
    def client(self, key: _Key) -> Iterator[httpx.Client]:
        with self.lock:
            kept = self.kept.get(key)
            if kept is None:
                kept = self.kept[key] = _Kept(key)
            self.kept.move_to_end(key)
            kept.users += 1
            closing = self._closable()
        for old in closing:
            old.client.close()
        try:
            yield kept.client
        finally:
            with self.lock:
                kept.users -= 1
                kept.idle_since = time.monotonic()

    def _closable(self) -> list[_Kept]:
        """Under the lock: the kept clients to close, taken out."""
        expired = time.monotonic() - KEEPALIVE_SECONDS
        over = len(self.kept) - self.most
        closing = []
        for key, kept in list(self.kept.items()):  # least recently used first
            if kept.users == 0 and (over > 0 or kept.idle_since < expired):
                closing.append(self.kept.pop(key))
                over -= 1
        return closing


_clients = _Clients(KEPT_TARGETS)


def post(url: str, message: Message, secrets: list[str], timeout: float) -> Outcome:
    """One attempt: the URL checked again (after DNS), signed now, sent once, over a kept-alive
    connection to the checked address if there is one. The answer's status is the outcome."""
    # The deadline runs from before the lookup: the name's DNS server is the receiver's too.
    deadline = _Deadline(timeout)
    try:
        target = addresses.target(url, timeout)
    except addresses.RefusedUrl as exc:
        return Outcome(None, None, f"refused: {exc}")
    sent_headers = headers(message, secrets, datetime.now(UTC))
    key = (urlsplit(url).scheme, target.host, target.port, target.address)
    started = time.monotonic()
    token = _current.set(deadline)
    try:
        with (
            _clients.client(key) as client,
            client.stream(
                "POST", url, content=message.body.encode(), headers=sent_headers, timeout=timeout
            ) as r,
        ):
            status = r.status_code
            latency = _ms(started)
            _drain(r)
    except httpx.TimeoutException:
        return Outcome(None, _ms(started), f"no answer within {timeout:g} s")
    except httpx.HTTPError as exc:
        return Outcome(None, _ms(started), f"{type(exc).__name__}: {exc}"[:500])
    finally:
        _current.reset(token)
    if 200 <= status < 300:
        return Outcome(status, latency, None)
    if 300 <= status < 400:
        return Outcome(status, latency, f"answered {status}: redirects are not followed")
    return Outcome(status, latency, f"answered {status}")


def _drain(response: httpx.Response) -> None:
    """Read what is left of a short body, within the request's deadline, so its connection is
    free for the next request; the status is the outcome whatever comes of it (a longer body,
    or one that does not arrive, closes the connection instead)."""
    read = 0
    try:
        for chunk in response.iter_raw():
            read += len(chunk)
            if read > BODY_READ_MAX:
                return
    except httpx.HTTPError:
        return


def _ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
