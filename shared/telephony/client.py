"""The one way to Twilio: the official SDK, pointed at TWILIO_API_BASE, so Twilio itself, the
sandbox carrier and a contract mock are the same code path."""

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any, Generic, TypeVar

import requests

# The SDK loads the 2010-04-01 API's ~100 modules on the first request; loaded here, at worker
# start, instead: under Python's import lock that first request would hold back every thread's
# first dial and release them at once, a burst at the carrier however the slots were spaced.
import twilio.rest.api.v2010.account  # noqa: F401
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from shared.config import get_settings
from shared.telephony import deadline

CALL_STATUS_EVENTS = ["initiated", "ringing", "answered", "completed"]

log = logging.getLogger(__name__)

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
    assert http_client.session is not None
    for scheme in ("http://", "https://"):  # the sandbox and contract mocks are plain HTTP
        http_client.session.mount(scheme, deadline.Adapter())
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
    *,
    to: str,
    from_: str,
    url: str,
    status_callback: str,
    timeout: int,
    time_limit: int | None,
    ends_by: datetime | None = None,
) -> RemoteCall:
    """Create a call. The whole request ends, answered or cut, by `ends_by` (at most
    TWILIO_TIMEOUT_SECONDS from now): a request cut on its way may have created the call, and
    is ambiguous; one the deadline stopped before it was sent is not (see `deadline`)."""
    seconds = get_settings().TWILIO_TIMEOUT_SECONDS
    if ends_by is not None:
        seconds = min(seconds, (ends_by - datetime.now(UTC)).total_seconds())
    if seconds <= 0:
        raise TwilioUnavailable(
            "the request's deadline passed before it was sent", maybe_sent=False
        )
    kwargs = {"time_limit": time_limit} if time_limit is not None else {}
    try:
        with deadline.within(seconds):
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


# A lookup reads at most this many pages of Twilio's largest size (1000) per list.
_MOST_PAGES = 10


T = TypeVar("T")


@dataclass(frozen=True)
class Lookup(Generic[T]):
    """What a list found, and whether it was read to its end."""

    found: list[T]
    complete: bool


def _read(first_page: Any, created_since: datetime | None = None) -> tuple[list[Any], bool]:
    """The records of a list from its first page on, and whether they are all of it. A later
    page that cannot be read ends the reading (incomplete): its URL is the server's, not ours.

    `created_since`, for a list Twilio gives newest first: the reading stops, complete, at the
    first record created before it, since every record after it is older still."""
    records: list[Any] = []
    page = first_page
    for pages in range(1, _MOST_PAGES + 1):
        for record in page:
            if created_since is not None and _created_before(record, created_since):
                return records, True
            records.append(record)
        if pages == _MOST_PAGES:
            break
        try:
            page = page.next_page()
        except (TwilioException, requests.RequestException) as exc:
            log.warning("a list's next page failed: %s", exc)
            return records, False
        if page is None:
            return records, True
    return records, page.next_page_url is None


def _created_before(record: Any, moment: datetime) -> bool:
    return record.date_created is not None and record.date_created < moment


def find_calls(*, to: str, from_: str, created_since: datetime) -> Lookup[RemoteCall]:
    """Every call from `from_` to `to` created since `created_since`, in whatever state.

    Twilio filters calls by status, and by the day they started or ended, never by when they
    were created; and a call it holds queued (Twilio queues calls over the account's calls per
    second rather than refusing them) has no start_time until it is dialed, so StartTime alone
    misses it. So two lists, narrowed here by date_created: the calls still queued, then those
    started since the day of `created_since`. In that order no dialed call slips between them:
    one that was not queued at the first had left the queue, and was dialed (a start_time, never
    cleared). EndTime would add nothing: only a call that completed has an end_time ("empty if
    the call did not complete successfully"), and it was dialed. A call Twilio ended from its
    queue without dialing it has neither, and is not found: it rang no one, and Twilio does not
    charge it, so dialing ours again rings the number once.
    """
    # Twilio reads the day of a moment; midnight, so the request says what it means.
    day = datetime.combine(created_since.astimezone(UTC).date(), time(), UTC)
    calls: dict[str, RemoteCall] = {}
    complete = True
    try:
        for only in ({"status": "queued"}, {"start_time_after": day}):
            first = get_client().calls.page(to=to, from_=from_, page_size=1000, **only)
            records, read_all = _read(first)
            complete = complete and read_all
            calls.update((c.sid, _remote(c)) for c in records)
    except _ERRORS as exc:
        raise _classify(exc) from exc
    found = [c for c in calls.values() if c.date_created is None or c.date_created >= created_since]
    return Lookup(found, complete)


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
        with deadline.within(get_settings().TWILIO_TIMEOUT_SECONDS):
            message = get_client().messages.create(
                to=to, from_=from_, body=body, status_callback=status_callback
            )
    except _ERRORS as exc:
        raise _classify(exc) from exc
    return _remote_message(message)


def find_messages(*, to: str, from_: str, created_since: datetime) -> Lookup[RemoteMessage]:
    """Every message from `from_` to `to` created since `created_since`, sent or not.

    Twilio filters messages only by To, From and the day they were sent (date_sent), which stays
    empty while Twilio holds a message queued: a DateSent filter misses it. So the list is not
    filtered by date at all; Twilio lists the newest first, so it is read only as far as the
    first message created before `created_since`, however often the number was texted before.
    """
    try:
        first = get_client().messages.page(to=to, from_=from_, page_size=1000)
        records, complete = _read(first, created_since)
    except _ERRORS as exc:
        raise _classify(exc) from exc
    return Lookup([_remote_message(m) for m in records], complete)
