"""Twilio's queue over the account's rate: Twilio places an account's calls at its calls per
second and keeps the rest `queued` (no start_time, no callbacks) until their turn, rather than
refusing them; it sends messages at the sender's messages per second the same way. The sandbox's
CALLS_PER_SECOND and MESSAGES_PER_SECOND (0, the default: no queue) turn this on, so the product
meets a call that Twilio accepted but has not dialed yet, as it will in production."""


class RateQueue:
    """Turns at a fixed rate, in order of arrival."""

    def __init__(self) -> None:
        self._next_turn = 0.0

    def wait(self, rate_per_second: float, arrived_at: float) -> float:
        """Seconds a creation that arrived at `arrived_at` (unix seconds) waits for its turn."""
        if rate_per_second <= 0:
            return 0.0
        turn = max(arrived_at, self._next_turn)
        self._next_turn = turn + 1 / rate_per_second
        return turn - arrived_at

    def reset(self) -> None:
        self._next_turn = 0.0
