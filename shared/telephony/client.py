"""The one way to Twilio: the official SDK, pointed at TWILIO_API_BASE, so Twilio itself, the
sandbox carrier and a contract mock are the same code path."""

import logging
import threading
from dataclasses import dataclass
from datetime import datetime

import requests

# The SDK loads the 2010-04-01 API's ~100 modules on the first request; loaded here, at worker
# start, instead: under Python's import lock that first request would hold back every thread's
# first dial and release them at once, a burst at the carrier however the slots were spaced.
import twilio.rest.api.v2010.account  # noqa: F401
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from shared.config import get_settings

CALL_STATUS_EVENTS = ["initiated", "ringing", "answered", "completed"]

# The SDK logs every request's and response's headers at INFO, three lines a dial that drown a
# worker's log; Celery's own line for each task says how the dial ended.
logging.getLogger("twilio.http_client").setLevel(logging.WARNING)


class TwilioUnavailable(Exception):
    """Worth retrying: Twilio throttled us, failed on its side, or could not be reached.

    `maybe_sent` says whether Twilio may have acted on the request anyway (a 5xx, or no answer
    after the request went out): a call creation in that state must be looked up, not re-sent.
    """

    def __init__(self, message: str, *, maybe_sent: bool) -> None:
        super().__init__(message)
        self.maybe_sent = maybe_sent


class TwilioRejected(Exception):
    """Twilio refused the request itself (e.g. 21211 invalid To): retrying changes nothing."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class RemoteCall:
    sid: str
    status: str
    to: str
    from_: str
    date_created: datetime | None
    duration: int | None = None


_local = threading.local()


def get_client() -> Client:
    # One client per thread: the SDK's HTTP session is not meant to be shared across threads.
    client = getattr(_local, "client", None)
    if client is None:
        client = _local.client = _build_client()
    return client


def _build_client() -> Client:
    settings = get_settings()
    http_client = TwilioHttpClient(timeout=settings.TWILIO_TIMEOUT_SECONDS)
    client = Client(
        settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN, http_client=http_client
    )
    client.api.base_url = settings.TWILIO_API_BASE.rstrip("/")
    return client


_ERRORS = (TwilioRestException, requests.RequestException)


def _never_sent(exc: requests.RequestException) -> bool:
    if isinstance(exc, requests.ConnectTimeout):
        return True
    text = repr(exc)
    return isinstance(exc, requests.ConnectionError) and (
        "NewConnectionError" in text or "Connection refused" in text
    )


def _classify(exc: Exception) -> Exception:
    if isinstance(exc, TwilioRestException):
        if exc.status == 429 or exc.code == 20429:
            return TwilioUnavailable(f"Twilio throttled the request: {exc.msg}", maybe_sent=False)
        if exc.status >= 500:
            return TwilioUnavailable(
                f"Twilio answered {exc.status} ({exc.code}): {exc.msg}", maybe_sent=True
            )
        return TwilioRejected(str(exc.code or exc.status), exc.msg)
    assert isinstance(exc, requests.RequestException)
    return TwilioUnavailable(f"Twilio unreachable: {exc}", maybe_sent=not _never_sent(exc))


def _remote(instance) -> RemoteCall:  # type: ignore[no-untyped-def]
    return RemoteCall(
        sid=instance.sid,
        status=instance.status,
        to=instance.to,
        from_=instance._from,
        date_created=instance.date_created,
        duration=int(instance.duration) if instance.duration else None,
    )


def create_call(
    *, to: str, from_: str, url: str, status_callback: str, timeout: int, time_limit: int | None
) -> RemoteCall:
    kwargs = {"time_limit": time_limit} if time_limit is not None else {}
    try:
        instance = get_client().calls.create(
            to=to,
            from_=from_,
            url=url,
            status_callback=status_callback,
            status_callback_event=CALL_STATUS_EVENTS,
            status_callback_method="POST",
            timeout=timeout,
            **kwargs,
        )
    except _ERRORS as exc:
        raise _classify(exc) from exc
    return _remote(instance)


def fetch_call(sid: str) -> RemoteCall:
    try:
        return _remote(get_client().calls(sid).fetch())
    except _ERRORS as exc:
        raise _classify(exc) from exc


def update_call_status(sid: str, status: str) -> RemoteCall:
    try:
        return _remote(get_client().calls(sid).update(status=status))
    except _ERRORS as exc:
        raise _classify(exc) from exc


def find_calls(*, to: str, started_after: datetime) -> list[RemoteCall]:
    """Calls to `to` created since `started_after` (Twilio filters by day; we narrow it).

    One page is enough: it holds the 50 newest calls to one number since a claim seconds ago.
    """
    try:
        found = get_client().calls.page(to=to, start_time_after=started_after, page_size=50)
    except _ERRORS as exc:
        raise _classify(exc) from exc
    return [_remote(c) for c in found if c.date_created is None or c.date_created >= started_after]


@dataclass(frozen=True)
class RemoteMessage:
    sid: str
    status: str
    body: str
    segments: int
    date_created: datetime | None


def _remote_message(instance) -> RemoteMessage:  # type: ignore[no-untyped-def]
    return RemoteMessage(
        sid=instance.sid,
        status=instance.status,
        body=instance.body,
        segments=int(instance.num_segments or 1),
        date_created=instance.date_created,
    )


def send_sms(*, to: str, from_: str, body: str, status_callback: str) -> RemoteMessage:
    try:
        message = get_client().messages.create(
            to=to, from_=from_, body=body, status_callback=status_callback
        )
    except _ERRORS as exc:
        raise _classify(exc) from exc
    return _remote_message(message)


def find_messages(*, to: str, sent_after: datetime) -> list[RemoteMessage]:
    try:
        found = get_client().messages.page(to=to, date_sent_after=sent_after, page_size=50)
    except _ERRORS as exc:
        raise _classify(exc) from exc
    return [
        _remote_message(m) for m in found if m.date_created is None or m.date_created >= sent_after
    ]
