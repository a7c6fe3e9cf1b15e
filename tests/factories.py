"""Factories: plain functions that make what a test needs through the product's own services."""

import itertools
import threading

import phonenumbers

from shared.accounts import service as accounts_service
from shared.caller_ids import service as caller_ids_service
from shared.campaigns import service as campaigns_service
from shared.campaigns.schemas import CampaignCreate
from shared.db import session_scope

_numbers = itertools.count(2_000_000)
_lock = threading.Lock()


def phone_number() -> str:
    """A valid US number no other test uses."""
    while True:
        with _lock:
            n = next(_numbers)
        number = f"+1415{n:07d}"
        if phonenumbers.is_valid_number(phonenumbers.parse(number)):
            return number


def account(credits: int = 0, name: str = "test account") -> tuple[str, str]:
    """A new account's id and API key."""
    with session_scope() as session:
        created, key = accounts_service.create_account(session, name, credits)
        return created.id, key.secret


def campaign(account_id: str, name: str = "welcome", script: str = "Hello {name}!") -> str:
    with session_scope() as session:
        return campaigns_service.create(
            session, account_id, CampaignCreate(name=name, script=script)
        ).id


def checkout(account_id: str, credits: int = 100, price_cents: int = 10) -> tuple[str, str]:
    """An open checkout session as create-checkout-session records it: (our id, Stripe's id)."""
    from shared.models import CheckoutSession, new_id

    stripe_id = "cs_test_" + new_id().replace("-", "")
    with session_scope() as session:
        row = CheckoutSession(
            account_id=account_id,
            credits=credits,
            amount_cents=credits * price_cents,
            currency="usd",
            stripe_session_id=stripe_id,
        )
        session.add(row)
        session.flush()
        return row.id, stripe_id


def caller_id(account_id: str, number: str | None = None) -> str:
    """A number the account may call and text from (a new one unless given)."""
    with session_scope() as session:
        return caller_ids_service.add(session, account_id, number or phone_number()).number
