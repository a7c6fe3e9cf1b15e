import random
from typing import Any

from shared.telephony.client import TwilioUnavailable

# Idempotent Twilio lookups and updates: retried with backoff and jitter when Twilio is
# unavailable, and only then (never a bare retry on any exception).
TWILIO_RETRY: dict[str, Any] = {
    "autoretry_for": (TwilioUnavailable,),
    "retry_backoff": True,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 10,
}

# A hang-up retries briefly (at most seven seconds): beyond that the sweeper sends it again from
# the database (HANGUP_RESEND_SECONDS after it was last sent), so the broker never holds a
# hang-up's long retries, and a retry lost with its worker or with Redis is not the last word.
HANG_UP_RETRY: dict[str, Any] = {**TWILIO_RETRY, "max_retries": 3}


def backoff_seconds(retries: int, cap: float = 60.0) -> float:
    """Exponential backoff with full jitter, so retrying workers do not stampede together."""
    return random.uniform(0, min(cap, 2.0**retries))
