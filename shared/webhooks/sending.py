"""One webhook request: signed as the Standard Webhooks specification says, sent to the
address that was checked, ended within WEBHOOK_TIMEOUT_SECONDS as a whole, never redirected.

httpx's timeouts are per phase (the connect, each read), so a receiver that answers a byte at a
time could hold a request for as long as it likes; here every read and write gets only what is
left of the request's deadline. The connection goes to the address `addresses.target` checked,
whatever the name resolves to by then, while TLS still verifies the certificate for the URL's
own host name.
"""

import json
import math
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

import certifi
import httpcore
import httpx
from standardwebhooks.webhooks import Webhook

from shared.webhooks import addresses

USER_AGENT = "Toingg-Webhooks/1"


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


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, deadline: _Deadline) -> None:
        self.inner, self.deadline = inner, deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self.inner.read(max_bytes, self.deadline.left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.inner.write(buffer, self.deadline.left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self.inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        left = self.deadline.left(timeout, httpcore.ConnectTimeout)
        return _Stream(self.inner.start_tls(ssl_context, server_hostname, left), self.deadline)

    def get_extra_info(self, info: str) -> Any:
        return self.inner.get_extra_info(info)


class _PinnedBackend(httpcore.NetworkBackend):
    """Connects to the checked address, whichever host the request names."""

    def __init__(self, target: addresses.Target, deadline: _Deadline) -> None:
        self.target, self.deadline = target, deadline
        self.inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        # `host` is the URL's, which the client's one request was built from: the address
        # checked for it is connected to instead of whatever the name resolves to now.
        left = self.deadline.left(timeout, httpcore.ConnectTimeout)
        stream = self.inner.connect_tcp(
            str(self.target.address), port, left, local_address, socket_options
        )
        return _Stream(stream, self.deadline)

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
    def __init__(self, target: addresses.Target, deadline: _Deadline) -> None:
        super().__init__(verify=_ssl_context(), trust_env=False)
        # httpx takes no network backend of its own; its pool is replaced by one with ours
        # (handle_request, which maps httpcore's errors to httpx's, is httpx's own).
        self._pool = httpcore.ConnectionPool(
            ssl_context=_ssl_context(),
            max_connections=1,
            network_backend=_PinnedBackend(target, deadline),
        )


def post(url: str, message: Message, secrets: list[str], timeout: float) -> Outcome:
    """One attempt: the URL checked again (after DNS), signed now, sent once. The answer's body
    is not read: its status is the outcome."""
    # The deadline runs from before the lookup: the name's DNS server is the receiver's too.
    deadline = _Deadline(timeout)
    try:
        target = addresses.target(url, timeout)
    except addresses.RefusedUrl as exc:
        return Outcome(None, None, f"refused: {exc}")
    sent_headers = headers(message, secrets, datetime.now(UTC))
    started = time.monotonic()
    try:
        with (
            httpx.Client(
                transport=_PinnedTransport(target, deadline),
                timeout=timeout,
                follow_redirects=False,
                trust_env=False,
            ) as client,
            client.stream("POST", url, content=message.body.encode(), headers=sent_headers) as r,
        ):
            status = r.status_code
    except httpx.TimeoutException:
        return Outcome(None, _ms(started), f"no answer within {timeout:g} s")
    except httpx.HTTPError as exc:
        return Outcome(None, _ms(started), f"{type(exc).__name__}: {exc}"[:500])
    latency = _ms(started)
    if 200 <= status < 300:
        return Outcome(status, latency, None)
    if 300 <= status < 400:
        return Outcome(status, latency, f"answered {status}: redirects are not followed")
    return Outcome(status, latency, f"answered {status}")


def _ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
