"""Stripe's webhook, end to end: events built from Stripe's fixtures, signed as Stripe signs
them, posted to /api/webhook, stored once and applied by a real worker."""

import json
import random
import secrets
import time
from typing import Any

import httpx
import pytest

from shared.config import get_settings
from tests import factories
from tests.billing import stripe_events as se
from tests.stack import Api, StackProcesses, wait_until


def post(body: str, signature: str | None = None) -> httpx.Response:
    secret = get_settings().STRIPE_WEBHOOK_SECRET
    headers = {"Content-Type": "application/json"}
    headers["Stripe-Signature"] = signature if signature is not None else se.sign(body, secret)
    return httpx.post(
        f"{get_settings().PUBLIC_BASE_URL}/api/webhook", content=body, headers=headers
    )


def send(event: dict[str, Any]) -> httpx.Response:
    response = post(json.dumps(event))
    assert response.status_code == 200, response.text
    return response


class Customer:
    def __init__(self, api_server: str, credits: int = 0) -> None:
        self.account_id, key = factories.account(credits=credits)
        self.api = Api(api_server, key)
        self.checkout_id, self.stripe_id = factories.checkout(self.account_id, credits=100)
        self.payment_intent = "pi_" + secrets.token_hex(8)

    def balance(self) -> int:
        return int(self.api.get("/api/credits").json()["balance"])

    def paid(self, event_type: str = "checkout.session.completed", paid: bool = True) -> dict:  # type: ignore[type-arg]
        return se.checkout_completed(
            self.stripe_id, self.checkout_id, self.account_id, 100,
            payment_intent=self.payment_intent, paid=paid, event_type=event_type,
        )  # fmt: skip

    def wait_for_balance(self, expected: int) -> None:
        wait_until(lambda: self.balance() == expected, 20, message=f"balance {expected}")
        time.sleep(0.5)  # and it stays there: nothing else is still on its way
        assert self.balance() == expected


@pytest.fixture
def customer(api_server: str, stack: StackProcesses) -> Customer:
    return Customer(api_server)


class TestVerification:
    def test_bad_signatures_get_400_and_change_nothing(self, customer: Customer) -> None:
        body = json.dumps(customer.paid())
        secret = get_settings().STRIPE_WEBHOOK_SECRET
        stale = int(time.time()) - 301
        cases = {
            "tampered body": (body.replace('"paid"', '"PAID"'), se.sign(body, secret)),
            "wrong secret": (body, se.sign(body, "whsec_wrong")),
            "older than 5 minutes": (body, se.sign(body, secret, timestamp=stale)),
            "no signature": (body, ""),
            "not JSON": ("{nope", se.sign("{nope", secret)),
        }
        for name, (payload, signature) in cases.items():
            response = post(payload, signature)
            assert response.status_code == 400, name
            assert response.json()["detail"], name
        time.sleep(1)
        assert customer.balance() == 0


class TestCheckoutCompleted:
    def test_adds_the_credits_once_however_often_delivered(self, customer: Customer) -> None:
        event = customer.paid()
        responses = [send(event).json() for _ in range(5)]
        assert [r["duplicate"] for r in responses] == [False, True, True, True, True]
        customer.wait_for_balance(100)

    def test_completed_and_async_twin_in_any_order_credit_once(
        self, api_server: str, stack: StackProcesses
    ) -> None:
        for seed in range(3):
            customer = Customer(api_server)
            events = [
                customer.paid(),
                customer.paid("checkout.session.async_payment_succeeded"),
            ] * 3
            random.Random(seed).shuffle(events)
            for event in events:
                send(event)
            customer.wait_for_balance(100)

    def test_unpaid_completion_waits_for_the_async_payment(self, customer: Customer) -> None:
        send(customer.paid(paid=False))
        time.sleep(1)
        assert customer.balance() == 0
        send(customer.paid("checkout.session.async_payment_succeeded"))
        customer.wait_for_balance(100)

    def test_async_failure_adds_nothing(self, customer: Customer) -> None:
        send(customer.paid(paid=False))
        send(customer.paid("checkout.session.async_payment_failed"))
        time.sleep(1.5)
        assert customer.balance() == 0


class TestRefundsAndDisputes:
    def test_half_refund_takes_back_half_once(self, customer: Customer) -> None:
        send(customer.paid())
        customer.wait_for_balance(100)
        refund = se.charge_refunded(
            customer.payment_intent, 1000, 500, "ch_" + secrets.token_hex(6)
        )
        for _ in range(3):
            send(refund)
        customer.wait_for_balance(50)

    def test_a_second_partial_refund_takes_back_its_own_share(self, customer: Customer) -> None:
        send(customer.paid())
        charge_id = "ch_" + secrets.token_hex(6)
        send(se.charge_refunded(customer.payment_intent, 1000, 500, charge_id))
        send(se.charge_refunded(customer.payment_intent, 1000, 800, charge_id))
        customer.wait_for_balance(20)

    def test_refund_before_its_completion_still_ends_right(self, customer: Customer) -> None:
        send(se.charge_refunded(customer.payment_intent, 1000, 500, "ch_" + secrets.token_hex(6)))
        time.sleep(1)
        send(customer.paid())
        customer.wait_for_balance(50)

    def test_dispute_takes_back_the_credits_and_marks_the_account(self, customer: Customer) -> None:
        send(customer.paid())
        event = se.dispute_created(customer.payment_intent, 1000)
        send(event)
        send(event)
        customer.wait_for_balance(0)
        assert customer.api.get("/api/credits").json()["disputed"] is True


class TestOtherEvents:
    def test_are_stored_and_acknowledged(self, customer: Customer) -> None:
        event = se.event("customer.created", se.fixture("customer"))
        assert send(event).json() == {"received": True, "duplicate": False}
        assert send(event).json() == {"received": True, "duplicate": True}
