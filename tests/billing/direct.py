"""Stripe events stored and applied in the test's own process, as the webhook and a worker do,
with no broker in between: the test decides when, and in which order, each one is applied."""

import secrets
from dataclasses import dataclass
from typing import Any

from shared.billing import events, ledger
from shared.db import session_scope
from shared.models import ExternalEvent
from tests import factories
from tests.billing import stripe_events as se


@dataclass(frozen=True)
class Payment:
    account_id: str
    checkout_id: str
    payment_intent: str


def store(event: dict[str, Any]) -> str:
    """The event's row, as the webhook stores it (without waking a worker)."""
    with session_scope() as session:
        row = ExternalEvent(
            source=events.SOURCE, external_id=event["id"], type=event["type"], payload=event
        )
        session.add(row)
        session.flush()
        return row.id


def apply(row_id: str) -> str:
    with session_scope() as session:
        return events.apply(session, row_id)


def deliver(event: dict[str, Any]) -> str:
    return apply(store(event))


def paid(account_id: str | None = None, credits: int = 100) -> Payment:
    """A checkout of `credits` credits (10 cents each), paid and credited."""
    if account_id is None:
        account_id, _ = factories.account()
    checkout_id, stripe_id = factories.checkout(account_id, credits=credits)
    payment_intent = "pi_" + secrets.token_hex(8)
    outcome = deliver(
        se.checkout_completed(
            stripe_id, checkout_id, account_id, credits, payment_intent=payment_intent
        )
    )
    assert outcome.endswith(f"credited {credits}"), outcome
    return Payment(account_id, checkout_id, payment_intent)


def balance(account_id: str) -> int:
    with session_scope() as session:
        value = ledger.balance_of(session, account_id)
        assert ledger.ledger_sum(session, account_id) == value
        return value
