"""Task names for webhooks."""

TICK = "webhooks.tick"
