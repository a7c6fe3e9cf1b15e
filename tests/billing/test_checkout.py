"""Buying credits as a customer would: create-checkout-session, the checkout page, Pay, and the
balance rising once (through the signed webhook and a real worker)."""

import re

import httpx
import pytest
from sqlalchemy import func, select

from shared.config import get_settings
from shared.db import session_scope
from shared.embedded_redis import free_port
from shared.models import CheckoutSession
from tests import factories
from tests.stack import Api, StackProcesses, wait_until


def checkout(body: dict) -> httpx.Response:  # type: ignore[type-arg]
    return httpx.post(f"{get_settings().PUBLIC_BASE_URL}/api/create-checkout-session", json=body)


class TestCheckout:
    def test_pay_on_the_checkout_page_adds_the_credits_once(
        self, api_server: str, carrier_server: str, stack: StackProcesses
    ) -> None:
        _, key = factories.account()
        created = checkout({"apikey": key, "credits": 250})
        assert created.status_code == 200, created.text
        session = created.json()
        assert session["sessionId"].startswith("cs_test_")
        assert (session["credits"], session["amountCents"]) == (250, 2500)
        page = httpx.get(session["url"])
        assert "Pay 25.00 USD" in page.text
        action = re.search(r'action="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        for _ in range(2):  # a second press sends Stripe's event again
            paid = httpx.post(action)
            assert paid.status_code == 303
        api = Api(api_server, key)
        wait_until(lambda: api.get("/api/credits").json()["balance"] == 250, 20, message="paid")
        entries = api.get("/api/credits").json()["entries"]
        assert [e["reason"] for e in entries] == ["checkout"]

    def test_a_credit_pack(self, api_server: str, carrier_server: str) -> None:
        _, key = factories.account()
        response = checkout({"apikey": key, "pack": "medium"})
        assert response.json()["credits"] == 500
        unknown = checkout({"apikey": key, "pack": "huge"})
        assert unknown.status_code == 422
        assert unknown.json()["detail"][0]["loc"] == ["body", "pack"]

    def test_bad_or_missing_apikey(self, api_server: str) -> None:
        assert checkout({"apikey": "tg_nope"}).status_code == 401
        missing = checkout({})
        assert missing.status_code == 422
        assert missing.json()["detail"][0]["loc"] == ["body", "apikey"]

    def test_stripe_unreachable_is_502_and_records_nothing(
        self, api_server: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        account_id, key = factories.account()
        monkeypatch.setattr(get_settings(), "STRIPE_API_BASE", f"http://127.0.0.1:{free_port()}")
        response = checkout({"apikey": key})
        assert response.status_code == 502
        assert response.json() == {"detail": "payments are unavailable; retry shortly"}
        with session_scope() as session:
            count = session.scalar(
                select(func.count()).where(CheckoutSession.account_id == account_id)
            )
        assert count == 0
