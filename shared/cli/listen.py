"""`toingg listen`: an account's events on this machine as they happen, what `stripe listen` is
to Stripe's users. It registers a temporary webhook endpoint for the account that points at a
local receiver, prints each delivery once its signature verifies with that endpoint's secret,
can pass it on unchanged to a local app, and removes the endpoint again on Ctrl-C or SIGTERM.

It talks to the API as a customer's code does, with the account's API key over HTTP, so it
works against any deployment the receiver can be reached from, needs no database, and shows
exactly what a customer's endpoint gets.
"""

import argparse
import contextlib
import logging
import os
import signal
import socket
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from shared.cli.stack import STATE_DIR

# `make run`'s API, and the demo account's key it keeps.
DEFAULT_API_URL = "http://127.0.0.1:8000"
DEMO_KEY_FILE = STATE_DIR / "demo-api-key"
API_KEY_ENV, API_URL_ENV = "TOINGG_API_KEY", "TOINGG_API_URL"
# Under the product's WEBHOOK_TIMEOUT_SECONDS (10 s by default), so the forward target's answer
# reaches the product before it gives up on this request.
FORWARD_TIMEOUT_SECONDS = 9.0
# The product waits for an answer before it sends a subject's next event; a forward target that
# cannot be reached is answered this, so the product sends the event again later.
FORWARD_FAILED = 502
# These describe a connection, not the request; httpx sets its own for the forwarded one.
HOP_BY_HOP = frozenset(
    {"connection", "content-length", "host", "keep-alive", "proxy-connection", "te", "trailer"}
    | {"transfer-encoding", "upgrade"}
)
# The receiver, on this machine only: the API reaches it where `make run` runs it, beside it.
RECEIVER_HOST = "127.0.0.1"
# Before the endpoint's secret is known (a delivery may come before the API's answer does).
SECRET_WAIT_SECONDS = 10.0


class ApiProblem(Exception):
    """What the API answered, or why it could not be asked, as a sentence."""


@dataclass
class Api:
    url: str
    key: str
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(
            base_url=self.url.rstrip("/"),
            headers={"authorization": f"Bearer {self.key}"},
            timeout=15,
        )

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, "/api" + path, **kwargs)
        except httpx.TransportError as exc:
            raise ApiProblem(f"cannot reach the API at {self.url} ({exc})") from None
        if response.status_code in (401, 403):
            raise ApiProblem(f"the API refused the key: {_detail(response)}")
        return response

    def create_endpoint(self, url: str, events: list[str], description: str) -> dict[str, Any]:
        response = self.call(
            "POST",
            "/webhook-endpoints",
            json={"url": url, "events": events, "description": description},
        )
        if response.status_code != 201:
            raise ApiProblem(f"the endpoint was refused: {_detail(response)}")
        return response.json()  # type: ignore[no-any-return]

    def delete_endpoint(self, endpoint_id: str) -> None:
        response = self.call("DELETE", f"/webhook-endpoints/{endpoint_id}")
        if response.status_code not in (204, 404):  # 404: gone already
            raise ApiProblem(f"answered {response.status_code}: {_detail(response)}")


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        return f"{response.status_code} {response.text[:200]}"
    if isinstance(detail, list):
        return "; ".join(f"{'.'.join(map(str, d['loc'][1:]))}: {d['msg']}" for d in detail)
    if isinstance(detail, dict):
        return str(detail.get("message", detail))
    return str(detail)


def _printable(text: str) -> str:
    """The text as it is when every character prints, else with each that does not escaped."""
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def _moment(raw: str | None) -> str:
    """An event's time to the millisecond, in UTC."""
    try:
        moment = datetime.fromisoformat(raw) if raw else datetime.now(UTC)
    except (TypeError, ValueError):
        return str(raw)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Listener:
    """Verifies, prints and forwards each request; one printed line per request, whole."""

    def __init__(self, forward_to: str | None) -> None:
        self.forward_to = forward_to
        self.webhook: Webhook | None = None
        self.ready = threading.Event()
        self.lock = threading.Lock()
        self.seen: set[str] = set()
        self.forwarder = httpx.Client(timeout=FORWARD_TIMEOUT_SECONDS, follow_redirects=False)

    def use_secret(self, secret: str) -> None:
        self.webhook = Webhook(secret)
        self.ready.set()

    def handle(self, body: bytes, headers: dict[str, str]) -> int:
        """The status to answer, once the request's line is printed: the product sends a
        subject's next event only after this answer, so the lines keep each subject's order."""
        self.ready.wait(SECRET_WAIT_SECONDS)
        lowered = {name.lower(): value for name, value in headers.items()}
        # Printed, and anyone on this machine can send it: control characters would reach
        # the terminal as escape sequences.
        event_id = _printable(lowered.get("webhook-id", ""))
        try:
            if self.webhook is None:
                raise WebhookVerificationError("no signing secret yet")
            event = self.webhook.verify(body, lowered)
            if not isinstance(event, dict):
                raise WebhookVerificationError("the body is not a JSON object")
        except (WebhookVerificationError, ValueError) as exc:
            # ValueError: a malformed signature or body, which the library does not catch.
            reason = _printable(str(exc) or type(exc).__name__)
            self._print(
                f"{_moment(None)}  refused: {reason} (webhook-id {event_id or 'missing'}); "
                "answered 400"
            )
            return 400
        status, outcome = 200, "verified"
        if self.forward_to:
            status, forwarded = self._forward(body, headers)
            outcome += f", {forwarded}"
        with self.lock:
            again = event_id in self.seen
            self.seen.add(event_id)
        if again:
            outcome += " (delivered again: the same webhook-id as before)"
        subject = f"{event.get('subjectType', '?')} {event.get('subjectId', '?')}"
        self._print(
            f"{_moment(event.get('timestamp'))}  {event.get('type', '?'):<18}  {subject}  "
            f"#{event.get('sequence', '?')}  id {event_id}  {outcome}"
        )
        return status

    def _forward(self, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        """The request as it came (its body and headers, the signature's included) to the
        forward target: that target's status, or FORWARD_FAILED when it gave none."""
        assert self.forward_to is not None
        passed = {name: value for name, value in headers.items() if name.lower() not in HOP_BY_HOP}
        try:
            response = self.forwarder.post(self.forward_to, content=body, headers=passed)
        except httpx.HTTPError as exc:
            return FORWARD_FAILED, (
                f"forward failed ({type(exc).__name__}: {exc}); answered {FORWARD_FAILED}, so it "
                "is sent again"
            )
        status = response.status_code
        if 200 <= status < 300:
            return status, f"forwarded: {status}"
        return status, f"forwarded: {status}, answered {status}, so it is sent again"

    def _print(self, line: str) -> None:
        with self.lock:
            print(line, flush=True)


def _handler(listener: Listener) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            status = listener.handle(body, dict(self.headers.items()))
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass  # each request has its own line already

    return Handler


def _api_key(given: str | None) -> str | None:
    """--api-key, TOINGG_API_KEY, or the demo account's key that `make run` keeps here."""
    if given:
        return given
    if os.environ.get(API_KEY_ENV):
        return os.environ[API_KEY_ENV]
    if DEMO_KEY_FILE.exists():
        return DEMO_KEY_FILE.read_text().strip() or None
    return None


def _patterns(raw: list[str] | None) -> list[str]:
    """Repeated or comma-separated, as GET /api/events?type= takes them."""
    found = [part.strip() for each in raw or [] for part in each.split(",") if part.strip()]
    return found or ["*"]


def listen(args: argparse.Namespace) -> int:
    # Its own requests to the API would be logged between the events' lines otherwise.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    key = _api_key(args.api_key)
    if key is None:
        print(
            f"no API key: give --api-key or {API_KEY_ENV} (with `make run`, the demo account's "
            f"is in {DEMO_KEY_FILE})",
            flush=True,
        )
        return 1
    api = Api(args.api_url, key)
    listener = Listener(args.forward_to)
    server = ThreadingHTTPServer((RECEIVER_HOST, args.port), _handler(listener))
    server.daemon_threads = True
    port = server.server_address[1]
    url = f"http://{RECEIVER_HOST}:{port}/"
    stopping = threading.Event()
    # SIGHUP: the terminal it ran in was closed. Ended by any of these without removing its
    # endpoint, the account's events would be owed to a dead receiver for the retry window.
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):  # Windows has no SIGHUP
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), lambda _signum, _frame: stopping.set())
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    events = _patterns(args.events)
    try:
        endpoint = api.create_endpoint(
            url, events, f"toingg listen on {socket.gethostname()}, port {port}"
        )
    except ApiProblem as exc:
        print(exc, flush=True)
        server.shutdown()
        return 1
    listener.use_secret(endpoint["secret"])
    try:
        print(
            f"Listening on {url} for {', '.join(events)} (endpoint {endpoint['id']}, "
            f"signing secret {endpoint['secret']})",
            flush=True,
        )
        if args.forward_to:
            print(f"Forwarding each verified event to {args.forward_to}", flush=True)
        print("Ctrl-C removes the endpoint.", flush=True)
        while not stopping.wait(0.5):
            pass
    finally:
        # Removed however it ends (its output gone, an error), while the receiver still
        # answers, so a request in flight is not left hanging.
        code = _remove(api, endpoint["id"])
        server.shutdown()
        server.server_close()
    return code


def _remove(api: Api, endpoint_id: str) -> int:
    try:
        api.delete_endpoint(endpoint_id)
    except ApiProblem as exc:
        _say(
            f"Could not remove endpoint {endpoint_id} ({exc}): "
            f"DELETE /api/webhook-endpoints/{endpoint_id} removes it."
        )
        return 1
    _say(f"Removed endpoint {endpoint_id}.")
    return 0


def _say(line: str) -> None:
    # Its output may be gone (a closed pipe): the endpoint's removal is what mattered.
    with contextlib.suppress(OSError):
        print(line, flush=True)


def add_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    command = commands.add_parser(
        "listen",
        help="print the account's events as they are delivered, each verified, through a "
        "temporary webhook endpoint on a local port",
    )
    command.add_argument(
        "--api-key",
        help=f"the account's API key (default: ${API_KEY_ENV}, else the demo key in "
        f"{DEMO_KEY_FILE})",
    )
    command.add_argument(
        "--api-url",
        default=os.environ.get(API_URL_ENV, DEFAULT_API_URL),
        help=f"the API's base URL (default: ${API_URL_ENV}, else {DEFAULT_API_URL})",
    )
    command.add_argument(
        "--events",
        action="append",
        metavar="TYPES",
        help="event types or wildcards (call.*), repeated or comma-separated (default: *)",
    )
    command.add_argument(
        "--forward-to",
        metavar="URL",
        help="pass each verified request on unchanged, and answer with that URL's status",
    )
    command.add_argument(
        "--port", type=int, default=0, help="the port to receive on (default: a free one)"
    )
    command.set_defaults(func=listen, database="none")
