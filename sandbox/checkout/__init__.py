"""A Stripe Checkout stand-in for development: the part of Stripe's API that creating a checkout
session uses, a page with a Pay button, and a correctly signed checkout.session.completed sent to
the product's webhook when the button is pressed."""
