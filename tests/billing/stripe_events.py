"""Stripe webhook events built from Stripe's own fixture objects and signed as Stripe signs them
(tests/specs/stripe_fixtures.json)."""

import copy
import hashlib
import hmac
import json
import secrets
import time
from functools import cache
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[1] / "specs" / "stripe_fixtures.json"


@cache
def _resources() -> dict[str, Any]:
    return dict(json.loads(FIXTURES.read_text())["resources"])


def fixture(name: str, **fields: Any) -> dict[str, Any]:
    obj = copy.deepcopy(_resources()[name])
    obj.update(fields)
    return dict(obj)


def event(event_type: str, obj: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    return fixture(
        "event",
        id=event_id or "evt_" + secrets.token_hex(12),
        type=event_type,
        data={"object": obj},
        created=int(time.time()),
    )


def checkout_completed(
    stripe_session_id: str, checkout_id: str, account_id: str, credits: int, *,
    payment_intent: str, paid: bool = True, event_type: str = "checkout.session.completed",
) -> dict[str, Any]:  # fmt: skip
    session = fixture(
        "checkout.session",
        id=stripe_session_id,
        mode="payment",
        client_reference_id=account_id,
        metadata={"checkout_id": checkout_id, "account_id": account_id, "credits": str(credits)},
        payment_intent=payment_intent,
        payment_status="paid" if paid else "unpaid",
        status="complete",
        amount_total=credits * 10,
    )
    return event(event_type, session)


def charge_refunded(payment_intent: str, amount: int, refunded: int, charge_id: str) -> dict:  # type: ignore[type-arg]
    charge = fixture(
        "charge",
        id=charge_id,
        payment_intent=payment_intent,
        amount=amount,
        amount_captured=amount,
        amount_refunded=refunded,
        refunded=refunded == amount,
    )
    return event("charge.refunded", charge)


def dispute(
    event_type: str, payment_intent: str, amount: int, status: str, dispute_id: str
) -> dict[str, Any]:
    """An event about one dispute (charge.dispute.created, .funds_withdrawn, .closed, ...)."""
    obj = fixture(
        "dispute",
        id=dispute_id,
        payment_intent=payment_intent,
        amount=amount,
        reason="fraudulent",
        status=status,
    )
    return event(event_type, obj)


def dispute_created(payment_intent: str, amount: int) -> dict:  # type: ignore[type-arg]
    return dispute(
        "charge.dispute.created", payment_intent, amount, "needs_response",
        "dp_" + secrets.token_hex(8),
    )  # fmt: skip


def sign(body: str, secret: str, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"
