"""The one way to Stripe: the official SDK, with its base URL from STRIPE_API_BASE, so Stripe and
the development checkout stand-in are one code path."""

from dataclasses import dataclass

import stripe

from shared.config import get_settings


class StripeUnavailable(Exception):
    """Stripe could not be reached or refused the request; nothing was bought."""


@dataclass(frozen=True)
class CreatedSession:
    id: str
    url: str


def _client() -> stripe.StripeClient:
    settings = get_settings()
    if not settings.STRIPE_SECRET_KEY:
        raise StripeUnavailable("STRIPE_SECRET_KEY is not set")
    base = {"api": settings.STRIPE_API_BASE} if settings.STRIPE_API_BASE else None
    # Retries reuse the idempotency key, so Stripe creates one session however many are sent.
    return stripe.StripeClient(
        settings.STRIPE_SECRET_KEY,
        base_addresses=base,
        max_network_retries=2,  # type: ignore[arg-type]
    )


def create_checkout_session(
    *,
    checkout_id: str,
    account_id: str,
    credits: int,
    unit_amount_cents: int,
    currency: str,
    success_url: str,
    cancel_url: str,
) -> CreatedSession:
    metadata = {"checkout_id": checkout_id, "account_id": account_id, "credits": str(credits)}
    try:
        session = _client().v1.checkout.sessions.create(
            params={
                "mode": "payment",
                "client_reference_id": account_id,
                "metadata": metadata,
                "payment_intent_data": {"metadata": metadata},
                "line_items": [
                    {
                        "quantity": credits,
                        "price_data": {
                            "currency": currency,
                            "unit_amount": unit_amount_cents,
                            "product_data": {"name": "Toingg credits"},
                        },
                    }
                ],
                "success_url": success_url,
                "cancel_url": cancel_url,
            },
            options={"idempotency_key": f"checkout-{checkout_id}"},
        )
    except stripe.StripeError as exc:
        raise StripeUnavailable(f"Stripe: {exc.user_message or exc}") from exc
    return CreatedSession(id=session.id, url=session.url or "")


def verify_signature(payload: bytes, signature: str | None) -> None:
    """Whether Stripe-Signature proves the body came from Stripe within the last 5 minutes:
    SignatureVerificationError if not, ValueError for a body that is not UTF-8 text. What the
    body holds is read by the caller."""
    stripe.WebhookSignature.verify_header(
        payload, signature, get_settings().STRIPE_WEBHOOK_SECRET, tolerance=300
    )
