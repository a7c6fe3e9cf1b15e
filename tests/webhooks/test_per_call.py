"""The `webhook` URL of a call or batch: its events, and a batch's calls', reach it signed with
the account's secret for such URLs, with the same retries, order, listing and resend as an
endpoint's; a URL webhooks may not go to is refused with the call."""

import json
import socket
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select
from standardwebhooks.webhooks import Webhook

from shared.cli import main as toingg
from shared.config import get_settings
from shared.db import session_scope
from shared.models import Account, Call, WebhookEndpoint, utcnow
from shared.webhooks import per_call
from tests import factories
from tests.api.conftest import KeyedClient
from tests.concurrency import Racer
from tests.webhooks.receiver import Receiver
from tests.webhooks.test_delivery import run_due, run_until

PATH = "/api/webhook-endpoints"


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = get_settings()
    monkeypatch.setattr(settings, "WEBHOOK_RETRY_SCHEDULE_SECONDS", [0.05])
    monkeypatch.setattr(settings, "WEBHOOK_RETRY_WINDOW_SECONDS", 60.0)
    monkeypatch.setattr(settings, "WEBHOOK_TIMEOUT_SECONDS", 2.0)


@pytest.fixture
def customer(client: TestClient) -> Iterator[KeyedClient]:
    account_id, key = factories.account(credits=100)
    factories.campaign(account_id, name="welcome", script="Hello {name}, this is Toingg.")
    yield KeyedClient(client, account_id, key)
    with session_scope() as session:
        session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.account_id == account_id))


def webhook_secret(account_id: str, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """What `toingg accounts webhook-secret ACCOUNT --json` prints."""
    capsys.readouterr()
    assert toingg(["accounts", "webhook-secret", account_id, "--json"]) == 0
    printed: dict[str, Any] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    return printed


def place(customer: KeyedClient, webhook: str | None) -> str:
    body: dict[str, Any] = {"campaign": "welcome", "name": "Ada"}
    body["phoneNumber"] = factories.phone_number()
    if webhook is not None:
        body["webhook"] = webhook
    response = customer.post("/api/make_toingg", body)
    assert response.status_code == 200, response.text
    call_id: str = response.json()["callId"]
    return call_id


def events_of(customer: KeyedClient, subject_id: str) -> list[dict[str, Any]]:
    """The subject's events as GET /api/events shows them, oldest first."""
    items: list[dict[str, Any]] = customer.get("/api/events", subject=subject_id).json()["items"]
    return items[::-1]


def per_call_endpoint(customer: KeyedClient, url: str) -> dict[str, Any]:
    listed = customer.get(PATH, perCall="true").json()["items"]
    [endpoint] = [e for e in listed if e["url"] == url]
    assert endpoint["perCall"] is True
    return endpoint


def delivered(customer: KeyedClient, endpoint_id: str, count: int) -> bool:
    page = customer.get(f"{PATH}/{endpoint_id}/deliveries").json()
    return sum(d["state"] == "delivered" for d in page["items"]) >= count


class TestDelivered:
    def test_a_calls_events_reach_its_webhook_signed_with_the_accounts_secret(
        self, customer: KeyedClient, capsys: pytest.CaptureFixture[str]
    ) -> None:
        secret = webhook_secret(customer.account_id, capsys)["secret"]
        assert secret.startswith("whsec_")
        with Receiver() as receiver:
            call_id = place(customer, receiver.url)
            hung_up = customer.post("/api/hang_up_call", callSid=call_id)
            assert hung_up.json()["status"] == "canceled", hung_up.text
            endpoint = per_call_endpoint(customer, receiver.url)
            run_until(lambda: len(receiver.requests()) == 2)
            got = receiver.requests()
        expected = events_of(customer, call_id)
        assert [e["type"] for e in expected] == ["call.queued", "call.canceled"]
        assert [r.headers["webhook-id"] for r in got] == [e["id"] for e in expected]
        for request, event in zip(got, expected, strict=True):
            body = Webhook(secret).verify(request.body, request.headers)
            assert body["type"] == event["type"] and body["data"] == event["data"]
            assert body["data"]["webhook"] == receiver.url
        assert customer.get(f"/api/calls/{call_id}").json()["webhook"] == receiver.url
        # Its deliveries are kept, and listed as any endpoint's.
        page = customer.get(f"{PATH}/{endpoint['id']}/deliveries").json()
        assert {d["eventId"] for d in page["items"]} == {e["id"] for e in expected}
        assert all(d["state"] == "delivered" for d in page["items"])

    def test_only_the_calls_that_name_the_url_are_sent_there(self, customer: KeyedClient) -> None:
        with Receiver() as receiver, Receiver() as other:
            mine = place(customer, receiver.url)
            theirs = place(customer, other.url)
            plain = place(customer, None)
            run_until(lambda: len(receiver.requests()) == 1 and len(other.requests()) == 1)
            run_due()
            [got], [elsewhere] = receiver.requests(), other.requests()
        assert json.loads(got.body)["subjectId"] == mine
        assert json.loads(elsewhere.body)["subjectId"] == theirs
        assert plain not in got.body + elsewhere.body

    def test_a_batchs_events_and_its_calls_reach_the_batchs_url(
        self, customer: KeyedClient, capsys: pytest.CaptureFixture[str]
    ) -> None:
        secret = webhook_secret(customer.account_id, capsys)["secret"]
        numbers = [factories.phone_number(), factories.phone_number()]
        with Receiver() as receiver:
            accepted = customer.post(
                "/api/make_batch_toingg",
                {
                    "campaign": "welcome",
                    "numberList": [{"clientName": "A", "clientNumber": n} for n in numbers],
                    "webhook": receiver.url,
                },
            )
            assert accepted.status_code == 200, accepted.text
            batch_id = accepted.json()["batchId"]
            assert customer.post(f"/api/batches/{batch_id}/cancel").status_code == 200
            calls = customer.get("/api/calls", batch=batch_id).json()["items"]
            subjects = [batch_id, *(c["id"] for c in calls)]
            expected = {e["id"]: e for s in subjects for e in events_of(customer, s)}
            run_until(lambda: len(receiver.requests()) >= len(expected))
            run_due()
            got = receiver.requests()
        assert len(calls) == 2
        assert sorted(r.headers["webhook-id"] for r in got) == sorted(expected)
        bodies = [Webhook(secret).verify(r.body, r.headers) for r in got]
        assert {b["subjectId"] for b in bodies} == set(subjects)
        assert "batch.canceled" in {b["type"] for b in bodies}
        for call in calls:  # each call's events in their order
            sequences = [b["sequence"] for b in bodies if b["subjectId"] == call["id"]]
            assert sequences == sorted(sequences) == [1, 2]
        assert customer.get(f"/api/batches/{batch_id}").json()["webhook"] == receiver.url

    def test_make_toingg_details_takes_a_webhook(self, customer: KeyedClient) -> None:
        with Receiver() as receiver:
            response = customer.post(
                "/api/make_toingg_details",
                {
                    "campaignName": "scripted",
                    "campaignScript": "Hello {name}.",
                    "name": "Ada",
                    "phoneNumber": factories.phone_number(),
                    "webhook": receiver.url,
                },
            )
            assert response.status_code == 200, response.text
            run_until(lambda: len(receiver.requests()) == 1)
        assert json.loads(receiver.requests()[0].body)["subjectId"] == response.json()["callId"]


class TestGuarantees:
    def test_retried_until_2xx_with_the_same_webhook_id_and_a_valid_signature(
        self, customer: KeyedClient, capsys: pytest.CaptureFixture[str]
    ) -> None:
        secret = webhook_secret(customer.account_id, capsys)["secret"]
        with Receiver(lambda n: 500 if n <= 3 else 200) as receiver:
            call_id = place(customer, receiver.url)
            endpoint = per_call_endpoint(customer, receiver.url)
            run_until(lambda: delivered(customer, endpoint["id"], 1))
            got = receiver.requests()
        [queued] = events_of(customer, call_id)
        assert len(got) == 4
        assert {r.headers["webhook-id"] for r in got} == {queued["id"]}
        for request in got:
            assert Webhook(secret).verify(request.body, request.headers)["type"] == "call.queued"
        [shown] = customer.get(f"{PATH}/{endpoint['id']}/deliveries").json()["items"]
        assert [a["statusCode"] for a in shown["attempts"]] == [500, 500, 500, 200]

    def test_a_secret_made_on_first_need_then_rotated_signs_beside_the_new_one_for_a_day(
        self, customer: KeyedClient
    ) -> None:
        with Receiver() as receiver:
            call_id = place(customer, receiver.url)  # the account's secret is made here
            rotated = customer.post("/api/webhook-secret/rotate")
            assert rotated.status_code == 200, rotated.text
            first = rotated.json()
            expires = datetime.fromisoformat(first["previousSecretExpiresAt"])
            assert abs(expires - (utcnow() + timedelta(days=1))) < timedelta(minutes=1)
            second = customer.post("/api/webhook-secret/rotate").json()
            run_until(lambda: len(receiver.requests()) == 1)
            [request] = receiver.requests()
        # The secret made on first need is no longer signing: rotated twice within the overlap.
        signatures = request.headers["webhook-signature"].split(" ")
        assert len(signatures) == 2
        assert Webhook(first["secret"]).verify(request.body, request.headers)
        assert Webhook(second["secret"]).verify(request.body, request.headers)
        assert json.loads(request.body)["subjectId"] == call_id

    def test_a_410_disables_the_url_until_a_call_names_it_again(
        self, customer: KeyedClient
    ) -> None:
        gone = {"on": True}
        with Receiver(lambda n: 410 if gone["on"] else 200) as receiver:
            first = place(customer, receiver.url)
            assert run_due() == ["gone: endpoint disabled"]
            endpoint = per_call_endpoint(customer, receiver.url)
            assert endpoint["enabled"] is False
            assert endpoint["disabledReason"] == "answered 410 Gone"
            [disabled] = customer.get("/api/events", type="webhook_endpoint.disabled").json()[
                "items"
            ]
            assert disabled["subjectId"] == endpoint["id"]
            gone["on"] = False
            second = place(customer, receiver.url)
            assert per_call_endpoint(customer, receiver.url)["enabled"] is True
            run_until(lambda: len(receiver.requests()) == 2)
            run_due()
            ids = [json.loads(r.body)["subjectId"] for r in receiver.requests()]
        # The first call's event was given up at the 410; the second call's is delivered.
        assert ids == [first, second]

    def test_resend_and_replay_reach_the_url(self, customer: KeyedClient) -> None:
        with Receiver() as receiver:
            since = utcnow()
            call_id = place(customer, receiver.url)
            place(customer, None)
            endpoint = per_call_endpoint(customer, receiver.url)
            run_until(lambda: len(receiver.requests()) == 1)
            [queued] = events_of(customer, call_id)
            resent = customer.post(f"/api/events/{queued['id']}/resend")
            assert resent.json() == {"deliveries": 1}, resent.text
            run_until(lambda: len(receiver.requests()) == 2)
            replayed = customer.post(
                f"{PATH}/{endpoint['id']}/replay", since=since.isoformat()
            ).json()
            assert replayed == {"deliveries": 1}
            run_until(lambda: len(receiver.requests()) == 3)
            ids = {r.headers["webhook-id"] for r in receiver.requests()}
        assert ids == {queued["id"]}

    def test_its_url_and_events_do_not_change_and_its_secret_is_the_accounts(
        self, customer: KeyedClient
    ) -> None:
        place(customer, "http://127.0.0.1:9/hooks")
        endpoint = per_call_endpoint(customer, "http://127.0.0.1:9/hooks")
        response = customer.patch(f"{PATH}/{endpoint['id']}", {"url": "http://127.0.0.1:9/x"})
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", "url"]
        response = customer.patch(f"{PATH}/{endpoint['id']}", {"events": ["call.*"]})
        assert response.json()["detail"][0]["loc"] == ["body", "events"]
        response = customer.post(f"{PATH}/{endpoint['id']}/rotate-secret")
        assert response.status_code == 409
        assert "/api/webhook-secret/rotate" in response.json()["detail"]
        assert customer.patch(f"{PATH}/{endpoint['id']}", {"enabled": False}).status_code == 200


class TestRefused:
    @pytest.mark.parametrize(
        ("path", "body"),
        [
            ("/api/make_toingg", {"campaign": "welcome", "phoneNumber": "+14155552671"}),
            (
                "/api/make_toingg_details",
                {
                    "campaignName": "other",
                    "campaignScript": "Hi {name}.",
                    "phoneNumber": "+14155552671",
                },
            ),
            (
                "/api/make_batch_toingg",
                {"campaign": "welcome", "numberList": [{"clientNumber": "+14155552671"}]},
            ),
            ("/api/make/toingg", {"campaign": "welcome", "phoneNumber": "+14155552671"}),
        ],
    )
    @pytest.mark.parametrize("url", ["ftp://example.com/hooks", "http://", ""])
    def test_a_bad_url_is_422_naming_webhook_and_nothing_is_placed(
        self, customer: KeyedClient, path: str, body: dict[str, Any], url: str
    ) -> None:
        response = customer.post(path, {**body, "webhook": url})
        assert response.status_code == 422, response.text
        assert [d["loc"] for d in response.json()["detail"]] == [["body", "webhook"]]
        assert customer.get("/api/calls").json()["total"] == 0
        assert customer.get("/api/campaigns/other").status_code == 404
        assert customer.get(PATH, perCall="true").json()["items"] == []

    @pytest.fixture
    def dns(self, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
        names: dict[str, list[str]] = {}
        real = socket.getaddrinfo

        def getaddrinfo(host: str, port: int, *args: object, **kwargs: object) -> Any:
            if host not in names:
                return real(host, port, *args, **kwargs)  # type: ignore[arg-type]
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in names[host]]

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        return names

    @staticmethod
    def production(monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(get_settings(), "ENVIRONMENT", "production")
        monkeypatch.setattr(get_settings(), "WEBHOOK_ALLOW_PRIVATE_URLS", None)

    @pytest.mark.parametrize(
        "url",
        ["http://127.0.0.1:8080/hooks", "http://10.0.0.5/hooks", "http://169.254.169.254/"],
    )
    def test_production_refuses_a_private_url(
        self, customer: KeyedClient, monkeypatch: pytest.MonkeyPatch, url: str
    ) -> None:
        self.production(monkeypatch)
        response = customer.post(
            "/api/make_toingg",
            {"campaign": "welcome", "phoneNumber": "+14155552671", "webhook": url},
        )
        assert response.status_code == 422, response.text
        [detail] = response.json()["detail"]
        assert detail["loc"] == ["body", "webhook"] and "resolves to" in detail["msg"]
        with session_scope() as session:
            assert (
                session.scalar(select(Call.id).where(Call.account_id == customer.account_id))
                is None
            )

    def test_production_refuses_it_again_at_delivery(
        self, customer: KeyedClient, dns: dict[str, list[str]], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        with Receiver() as receiver:
            dns["hooks.example.com"] = ["93.184.215.14"]
            url = f"http://hooks.example.com:{receiver.port}/h"
            place(customer, url)
            # In production (the sandbox's caller ID is refused there, so the call is placed
            # before), with the name rebound to us since.
            self.production(monkeypatch)
            dns["hooks.example.com"] = ["127.0.0.1"]
            [said] = run_due()
            assert receiver.requests() == []
        assert "refused: hooks.example.com resolves to 127.0.0.1, a loopback address" in said


class TestAtOnce:
    URL = "http://127.0.0.1:9/at-once"

    def test_two_first_calls_naming_a_url_make_one_endpoint_and_one_secret(self) -> None:
        account_id, _ = factories.account()
        with session_scope() as held:
            per_call.bind(held, account_id, self.URL)  # its endpoint and secret, not committed
            secret = held.scalar(select(Account.webhook_secret).where(Account.id == account_id))
            other = Racer(lambda session: per_call.bind(session, account_id, self.URL))
            other.wait_until_blocked()
        assert other.join() == self.URL
        with session_scope() as session:
            found = session.scalars(
                select(WebhookEndpoint).where(WebhookEndpoint.account_id == account_id)
            ).all()
            assert [(e.url, e.per_call, e.enabled) for e in found] == [(self.URL, True, True)]
            assert session.get(Account, account_id).webhook_secret == secret  # type: ignore[union-attr]

    def test_calls_naming_an_enabled_url_do_not_wait_for_each_other(self) -> None:
        account_id, _ = factories.account()
        with session_scope() as session:
            per_call.bind(session, account_id, self.URL)
        with session_scope() as held:
            per_call.bind(held, account_id, self.URL)
            other = Racer(lambda session: per_call.bind(session, account_id, self.URL))
            assert not other.wait_until_blocked_or_done()
            other.join()
