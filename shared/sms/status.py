"""An SMS's statuses: ours until Twilio has it, then Twilio's MessageStatus."""

QUEUED = "queued"
SENDING = "sending"
SENT = "sent"
DELIVERED = "delivered"
UNDELIVERED = "undelivered"
FAILED = "failed"
# Its number was put on a do-not-contact list after the SMS was accepted: never sent.
SUPPRESSED = "suppressed"

FINAL = frozenset({DELIVERED, UNDELIVERED, FAILED, SUPPRESSED})
_RANK = {QUEUED: 0, SENDING: 1, SENT: 2}
_FROM_TWILIO = {
    "accepted": SENDING,
    "queued": SENDING,
    "sending": SENDING,
    "sent": SENT,
    "delivered": DELIVERED,
    "undelivered": UNDELIVERED,
    "failed": FAILED,
}


def from_twilio(message_status: str) -> str | None:
    return _FROM_TWILIO.get(message_status)


ALL = (QUEUED, SENDING, SENT, *sorted(FINAL))


def advances(current: str, new: str) -> bool:
    rank = lambda s: 3 if s in FINAL else _RANK[s]  # noqa: E731
    return current not in FINAL and rank(new) > rank(current)


def allowed(current: str, new: str) -> bool:
    """The machine: forward, or a claim Twilio did not take handed back to the queue."""
    return advances(current, new) or (current, new) == (SENDING, QUEUED)


def before(new: str) -> tuple[str, ...]:
    """The statuses an SMS may move to `new` from."""
    return tuple(status for status in ALL if allowed(status, new))
