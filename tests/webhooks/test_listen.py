"""`toingg listen` as a developer runs it beside the stack: a process of its own that registers
a temporary endpoint, prints each event as it is delivered and verified, refuses a forged
request, forwards to a local app, and removes its endpoint when it is stopped."""

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from shared.db import session_scope
from shared.events import outbox
from shared.models import Event, new_id
from tests import factories
from tests.stack import Api, Carrier, StackProcesses, wait_until
from tests.webhooks.receiver import Receiver

STACK_ENV = {"WEBHOOK_RETRY_SCHEDULE_SECONDS": "[0.5]"}
# A printed event: time, type, subject, #sequence, id, and what became of it.
EVENT_LINE = re.compile(
    r"^(?P<time>\S+Z)  (?P<type>\S+)\s+(?P<subject_type>\S+) (?P<subject_id>\S+)  "
    r"#(?P<sequence>\d+)  id (?P<id>\S+)  (?P<outcome>.+)$"
)
READY = re.compile(r"^Listening on (?P<url>\S+) for .* \(endpoint (?P<endpoint>\S+), "
                   r"signing secret (?P<secret>whsec_\S+)\)$")  # fmt: skip


@dataclass
class Listening:
    """A running `toingg listen` and every line it printed so far."""

    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    url: str = ""
    endpoint_id: str = ""
    secret: str = ""

    def read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def events(self, subject_id: str | None = None) -> list[dict[str, str]]:
        found = [m.groupdict() for line in list(self.lines) if (m := EVENT_LINE.match(line))]
        return [e for e in found if subject_id is None or e["subject_id"] == subject_id]

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)


@pytest.fixture
def start_listen(api_server: str, stack: StackProcesses) -> Iterator:  # type: ignore[type-arg]
    """Starts `toingg listen` for an account's key, with further options; stops it after."""
    started: list[Listening] = []

    def start(api_key: str, *options: str) -> Listening:
        process = subprocess.Popen(
            [sys.executable, "-m", "shared.cli", "listen", "--api-url", api_server, *options],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "TOINGG_API_KEY": api_key},
        )
        listening = Listening(process)
        started.append(listening)
        threading.Thread(target=listening.read, daemon=True).start()
        wait_until(
            lambda: any(READY.match(line) for line in listening.lines) or process.poll(),
            60,
            message="toingg listen says it listens",
        )
        [ready] = [m for line in listening.lines if (m := READY.match(line))]
        listening.url, listening.endpoint_id = ready["url"], ready["endpoint"]
        listening.secret = ready["secret"]
        return listening

    yield start
    for listening in started:
        if listening.process.poll() is None:
            listening.stop()


def api_of(api_server: str, credits: int = 0) -> Api:
    account_id, key = factories.account(credits=credits)
    return Api(api_server, key, account_id)


def events_of(api: Api, subject_id: str) -> list[dict]:  # type: ignore[type-arg]
    """The subject's events as GET /api/events shows them, oldest first."""
    items = api.get("/api/events", subject=subject_id, limit=100).json()["items"]
    return sorted(items, key=lambda e: e["sequence"])


def append(account_id: str) -> Event:
    call_id = new_id()
    with session_scope() as session:
        return outbox.append(
            session, account_id, "call.completed", "call", call_id, {"id": call_id}
        )


class TestListen:
    def test_a_batch_s_calls_print_their_events_in_order_each_verified(
        self, api_server: str, carrier: Carrier, start_listen
    ) -> None:
        api = api_of(api_server, credits=100)
        factories.campaign(api.account_id, name="welcome", script="Hello {name}.")
        listening = start_listen(api.api_key)
        rows = [{"clientName": f"n{i}", "clientNumber": factories.phone_number()} for i in range(3)]
        response = api.post("/api/make_batch_toingg", {"campaign": "welcome", "numberList": rows})
        assert response.status_code == 200, response.text
        batch_id = response.json()["batchId"]
        wait_until(
            lambda: api.get(f"/api/batches/{batch_id}").json()["status"] == "completed",
            90,
            message="the batch completed",
        )
        call_ids = [c["id"] for c in api.get("/api/calls", batch=batch_id).json()["items"]]
        assert len(call_ids) == 3
        for subject_id in [*call_ids, batch_id]:
            shown = events_of(api, subject_id)
            wait_until(
                lambda: len(listening.events(subject_id)) >= len(shown),  # noqa: B023
                60,
                message=f"every event of {subject_id} printed",
            )
            printed = listening.events(subject_id)
            # The same events as GET /api/events, in their order, each verified once.
            assert [e["id"] for e in printed] == [e["id"] for e in shown]
            assert [e["type"] for e in printed] == [e["type"] for e in shown]
            assert [int(e["sequence"]) for e in printed] == list(range(1, len(shown) + 1))
            assert {e["outcome"] for e in printed} == {"verified"}
        for call_id in call_ids:
            printed = listening.events(call_id)
            assert printed[0]["type"] == "call.queued"
            assert printed[-1]["type"] == "call.completed"
        assert listening.events(batch_id)[-1]["type"] == "batch.completed"

    def test_a_forged_request_is_refused_and_printed_so(
        self, api_server: str, start_listen
    ) -> None:
        api = api_of(api_server)
        listening = start_listen(api.api_key)
        forged_id = new_id()
        answer = httpx.post(
            listening.url,
            content='{"type":"call.completed","timestamp":"2026-01-01T00:00:00Z","data":{}}',
            headers={
                "webhook-id": forged_id,
                "webhook-timestamp": str(int(time.time())),
                "webhook-signature": "v1,bm90IHRoZSBzaWduYXR1cmU=",
            },
        )
        assert answer.status_code == 400
        wait_until(
            lambda: any(forged_id in line for line in listening.lines), 10, message="printed"
        )
        [line] = [line for line in listening.lines if forged_id in line]
        assert "refused: No matching signature found" in line and "answered 400" in line
        assert listening.events() == []

    def test_a_forged_requests_control_characters_never_reach_the_terminal(
        self, api_server: str, start_listen
    ) -> None:
        # Anyone on the machine can reach the receiver: its webhook-id was printed as sent,
        # escape sequences and all (a terminal's title, its clipboard, what it shows).
        api = api_of(api_server)
        listening = start_listen(api.api_key)
        host, port = listening.url.removeprefix("http://").rstrip("/").split(":")
        body = b"{}"
        with socket.create_connection((host, int(port)), timeout=10) as connection:
            connection.sendall(
                b"POST / HTTP/1.1\r\nHost: x\r\nwebhook-id: forged\x1b]52;c;cHduZWQ=\x07\x1b[2J\r\n"
                b"webhook-timestamp: 1\r\nwebhook-signature: v1,eA==\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(body), body)
            )
            assert connection.recv(100).startswith(b"HTTP/1.0 400")
        wait_until(lambda: any("forged" in line for line in listening.lines), 10)
        [line] = [line for line in listening.lines if "forged" in line]
        assert "refused" in line and "\x1b" not in line and "\x07" not in line
        assert "forged\\x1b]52;c;cHduZWQ=\\x07\\x1b[2J" in line

    def test_forward_to_passes_the_signed_request_on_and_answers_with_its_status(
        self, api_server: str, start_listen
    ) -> None:
        api = api_of(api_server)
        # The app refuses the first request: listen answers 500, and the product sends it again.
        with Receiver(lambda n: 500 if n == 1 else 200) as app:
            listening = start_listen(api.api_key, "--forward-to", app.url)
            event = append(api.account_id)
            wait_until(lambda: len(app.requests()) == 2, 60, message="sent again after the 500")
            wait_until(lambda: len(listening.events()) == 2, 10, message="both printed")
            got = app.requests()
        for request in got:
            assert request.headers["webhook-id"] == event.id
            assert request.path == "/hooks"
            body = request.verified_with(listening.secret)
            assert body["type"] == "call.completed" and body["sequence"] == 1
        first, second = listening.events()
        assert first["id"] == second["id"] == event.id
        assert first["outcome"] == "verified, forwarded: 500, answered 500, so it is sent again"
        assert second["outcome"] == (
            "verified, forwarded: 200 (delivered again: the same webhook-id as before)"
        )
        deliveries = api.get(f"/api/webhook-endpoints/{listening.endpoint_id}/deliveries").json()
        [delivery] = deliveries["items"]
        assert [a["statusCode"] for a in delivery["attempts"]] == [500, 200]

    def test_sigterm_removes_the_endpoint(self, api_server: str, start_listen) -> None:
        api = api_of(api_server)
        listening = start_listen(api.api_key, "--events", "call.*,batch.completed")
        [shown] = api.get("/api/webhook-endpoints").json()["items"]
        assert shown["id"] == listening.endpoint_id
        assert shown["url"] == listening.url
        assert shown["events"] == ["call.*", "batch.completed"]
        assert listening.stop() == 0
        assert listening.lines[-1] == f"Removed endpoint {listening.endpoint_id}."
        assert api.get("/api/webhook-endpoints").json()["items"] == []

    def test_its_terminal_closing_removes_the_endpoint(self, api_server: str, start_listen) -> None:
        # SIGHUP, as a closed terminal window sends it: the default ended the process and left
        # the endpoint behind, owed every event of the account for three days.
        api = api_of(api_server)
        listening = start_listen(api.api_key)
        listening.process.send_signal(signal.SIGHUP)
        assert listening.process.wait(timeout=30) == 0
        wait_until(
            lambda: listening.lines[-1:] == [f"Removed endpoint {listening.endpoint_id}."], 10
        )
        assert api.get("/api/webhook-endpoints").json()["items"] == []

    def test_an_unknown_event_type_is_refused_before_anything_listens(
        self, api_server: str
    ) -> None:
        api = api_of(api_server)
        done = subprocess.run(
            [sys.executable, "-m", "shared.cli", "listen", "--api-url", api_server,
             "--api-key", api.api_key, "--events", "call.ended"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 1
        assert "the endpoint was refused: events: no event type matches 'call.ended'" in (
            done.stdout
        )
        assert api.get("/api/webhook-endpoints").json()["items"] == []
