"""The sandbox process: the Twilio-compatible carrier at its root, the Stripe Checkout
stand-in under /stripe (so STRIPE_API_BASE is <sandbox URL>/stripe)."""

from fastapi import FastAPI

from sandbox.checkout.app import create_app as create_checkout_app
from sandbox.twilio.app import create_app as create_carrier_app
from sandbox.twilio.config import CarrierSettings

STRIPE_PREFIX = "/stripe"


def create_app(settings: CarrierSettings | None = None) -> FastAPI:
    settings = settings or CarrierSettings()
    app = create_carrier_app(settings)
    public_url = f"http://{settings.HOST}:{settings.PORT}{STRIPE_PREFIX}"
    app.mount(STRIPE_PREFIX, create_checkout_app(public_url))
    return app
