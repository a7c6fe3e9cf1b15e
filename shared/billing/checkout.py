"""Buying credits: a Stripe Checkout Session in payment mode, recorded before anyone pays."""

from sqlalchemy.orm import Session

from shared.billing import stripe_gateway
from shared.config import get_settings
from shared.models import Account, CheckoutSession, new_id


class UnknownPack(ValueError):
    pass


def credits_for(credits: int | None, pack: str | None) -> int:
    settings = get_settings()
    if pack is not None:
        if pack not in settings.CREDIT_PACKS:
            raise UnknownPack(pack)
        return settings.CREDIT_PACKS[pack]
    return credits if credits is not None else settings.DEFAULT_CHECKOUT_CREDITS


def start(session: Session, account: Account, credits: int) -> tuple[CheckoutSession, str]:
    """Create the Stripe session first (raises StripeUnavailable), then record it.

    Returns the record and the URL where the customer pays."""
    settings = get_settings()
    checkout_id = new_id()
    base = settings.PUBLIC_BASE_URL.rstrip("/")
    created = stripe_gateway.create_checkout_session(
        checkout_id=checkout_id,
        account_id=account.id,
        credits=credits,
        unit_amount_cents=settings.CREDIT_PRICE_CENTS,
        currency=settings.CURRENCY,
        success_url=settings.CHECKOUT_SUCCESS_URL or f"{base}/api/checkout/done?status=paid",
        cancel_url=settings.CHECKOUT_CANCEL_URL or f"{base}/api/checkout/done?status=canceled",
    )
    checkout = CheckoutSession(
        id=checkout_id,
        account_id=account.id,
        credits=credits,
        amount_cents=credits * settings.CREDIT_PRICE_CENTS,
        currency=settings.CURRENCY,
        stripe_session_id=created.id,
        status="open",
    )
    session.add(checkout)
    session.flush()
    return checkout, created.url
