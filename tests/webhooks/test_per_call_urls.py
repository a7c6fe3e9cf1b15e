"""The endpoints of calls' and batches' `webhook` URLs: listed apart from the account's own
(GET /api/webhook-endpoints?perCall=true, a page at a time), and capped per account at
WEBHOOK_PER_CALL_URLS_MAX distinct URLs, a new one past it refused naming `webhook`, even when
two requests name new URLs at once."""

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete

from shared.config import get_settings
from shared.db import get_sessionmaker, session_scope
from shared.models import WebhookEndpoint
from shared.webhooks import per_call
from tests import factories
from tests.api.conftest import KeyedClient

PATH = "/api/webhook-endpoints"
PLACES: list[tuple[str, dict[str, Any]]] = [
    ("/api/make_toingg", {"campaign": "welcome", "name": "Ada"}),
    ("/api/make_toingg_details", {"campaignName": "other", "campaignScript": "Hi {name}."}),
    ("/api/make_batch_toingg", {"campaign": "welcome"}),
]


@pytest.fixture
def customer(client: TestClient) -> Iterator[KeyedClient]:
    account_id, key = factories.account(credits=100)
    factories.campaign(account_id, name="welcome", script="Hello {name}, this is Toingg.")
    yield KeyedClient(client, account_id, key)
    with session_scope() as session:
        session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.account_id == account_id))


def hook(n: int) -> str:
    """A URL that differs per call, as a customer's call id in its query makes it."""
    return f"http://127.0.0.1:9/hooks?call={n}"


def place(customer: KeyedClient, webhook: str, path: str = "/api/make_toingg") -> httpx.Response:
    body = dict(next(b for p, b in PLACES if p == path))
    number = factories.phone_number()
    if path == "/api/make_batch_toingg":
        body["numberList"] = [{"clientNumber": number}]
    else:
        body["phoneNumber"] = number
    response: httpx.Response = customer.post(path, {**body, "webhook": webhook})
    return response


def per_call_urls(customer: KeyedClient) -> list[str]:
    page = customer.get(PATH, perCall="true", limit=500).json()
    return [endpoint["url"] for endpoint in page["items"]]


@pytest.fixture
def cap(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(get_settings(), "WEBHOOK_PER_CALL_URLS_MAX", 2)
    return 2


class TestListed:
    def test_the_accounts_own_endpoints_by_default_and_per_call_ones_when_asked(
        self, customer: KeyedClient
    ) -> None:
        own = [customer.post(PATH, {"url": f"http://127.0.0.1:9/own{n}"}).json() for n in (1, 2)]
        for n in range(3):
            assert place(customer, hook(n)).status_code == 200

        page = customer.get(PATH).json()
        assert [e["id"] for e in page["items"]] == [e["id"] for e in own]
        assert (page["total"], page["limit"], page["offset"]) == (2, 50, 0)

        per_call_page = customer.get(PATH, perCall="true").json()
        assert [e["url"] for e in per_call_page["items"]] == [hook(0), hook(1), hook(2)]
        assert all(e["perCall"] for e in per_call_page["items"])
        assert per_call_page["total"] == 3

        second = customer.get(PATH, perCall="true", limit=2, offset=2).json()
        assert [e["url"] for e in second["items"]] == [hook(2)]
        assert (second["total"], second["limit"], second["offset"]) == (3, 2, 2)

    @pytest.mark.parametrize(
        ("params", "name"), [({"perCall": "maybe"}, "perCall"), ({"limit": "0"}, "limit")]
    )
    def test_a_bad_query_is_422_naming_it(
        self, customer: KeyedClient, params: dict[str, str], name: str
    ) -> None:
        response = customer.get(PATH, **params)
        assert response.status_code == 422, response.text
        assert [d["loc"] for d in response.json()["detail"]] == [["query", name]]


class TestCapped:
    @pytest.mark.parametrize("path", [p for p, _ in PLACES])
    def test_a_new_url_past_the_cap_is_422_naming_webhook_and_nothing_is_placed(
        self, customer: KeyedClient, cap: int, path: str
    ) -> None:
        for n in range(cap):
            assert place(customer, hook(n)).status_code == 200

        response = place(customer, hook(cap), path)

        assert response.status_code == 422, response.text
        [detail] = response.json()["detail"]
        assert detail["loc"] == ["body", "webhook"]
        assert "has 2 per-call webhook URLs already" in detail["msg"]
        assert "?perCall=true" in detail["msg"]
        assert customer.get("/api/calls").json()["total"] == cap
        assert customer.get("/api/events", type="batch.*").json()["items"] == []
        assert customer.get("/api/campaigns/other").status_code == 404
        assert per_call_urls(customer) == [hook(n) for n in range(cap)]

    def test_known_urls_go_on_and_a_deleted_one_makes_room(
        self, customer: KeyedClient, cap: int
    ) -> None:
        for n in range(cap):
            assert place(customer, hook(n)).status_code == 200
        assert place(customer, hook(0)).status_code == 200
        assert place(customer, hook(1), "/api/make_batch_toingg").status_code == 200
        # The account's own endpoints are counted apart (at most 50 of them).
        assert customer.post(PATH, {"url": "http://127.0.0.1:9/own"}).status_code == 201
        assert place(customer, hook(cap)).status_code == 422

        [first] = customer.get(PATH, perCall="true", limit=1).json()["items"]
        assert customer.delete(f"{PATH}/{first['id']}").status_code == 204

        assert place(customer, hook(cap)).status_code == 200
        assert per_call_urls(customer) == [hook(n) for n in range(1, cap + 1)]

    def test_two_new_urls_at_once_take_the_last_place_once(
        self, customer: KeyedClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(get_settings(), "WEBHOOK_PER_CALL_URLS_MAX", 2)
        # The account's secret for such URLs exists: the first one's update of the account
        # row orders nothing here.
        assert place(customer, hook(0)).status_code == 200
        # One request has made its URL's endpoint, and holds its transaction open.
        first = get_sessionmaker()()
        try:
            per_call.bind(first, customer.account_id, hook(1))
            answered: list[httpx.Response] = []
            second = threading.Thread(
                target=lambda: answered.append(place(customer, hook(2))), daemon=True
            )
            second.start()
            second.join(1.0)
            assert answered == [], "the second counted without waiting for the first"
            first.commit()
        finally:
            first.close()
        second.join(15)
        [response] = answered
        assert response.status_code == 422, response.text
        assert response.json()["detail"][0]["loc"] == ["body", "webhook"]
        assert per_call_urls(customer) == [hook(0), hook(1)]
