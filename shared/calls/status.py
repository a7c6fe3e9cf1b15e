"""A call's statuses and the one direction they move in."""

QUEUED = "queued"
# Waiting for credits: back to queued when the account's balance grows.
INSUFFICIENT_CREDITS = "insufficient-credits"
# Waiting for its hours (or its startAt): queued when they open.
SCHEDULED = "scheduled"
DIALING = "dialing"
INITIATED = "initiated"
RINGING = "ringing"
IN_PROGRESS = "in-progress"
COMPLETED = "completed"
BUSY = "busy"
NO_ANSWER = "no-answer"
FAILED = "failed"
CANCELED = "canceled"
# Its number was put on a do-not-contact list after the call was accepted: never dialed.
SUPPRESSED = "suppressed"
# Not placed by its notAfter: never placed, nothing charged.
EXPIRED = "expired"

# The final statuses Twilio reports; SUPPRESSED and EXPIRED are ours, which Twilio never sends.
_TWILIO_FINAL = frozenset({COMPLETED, BUSY, NO_ANSWER, FAILED, CANCELED})
FINAL = frozenset({*_TWILIO_FINAL, SUPPRESSED, EXPIRED})
# Handed to Twilio and not yet over: the statuses a hang-up must reach Twilio for.
LIVE = frozenset({INITIATED, RINGING, IN_PROGRESS})
ALL = (
    QUEUED,
    INSUFFICIENT_CREDITS,
    SCHEDULED,
    DIALING,
    INITIATED,
    RINGING,
    IN_PROGRESS,
    *sorted(FINAL),
)

_RANK = {
    QUEUED: 0,
    INSUFFICIENT_CREDITS: 0,
    SCHEDULED: 0,
    DIALING: 1,
    INITIATED: 2,
    RINGING: 3,
    IN_PROGRESS: 4,
}
# Twilio's own names for a call it has accepted but not yet started ringing.
_TWILIO_ALIASES = {"queued": INITIATED, "initiated": INITIATED}


def rank(status: str) -> int:
    return 5 if status in FINAL else _RANK[status]


def from_twilio(call_status: str) -> str | None:
    """Our status for a Twilio CallStatus, None for one we do not know."""
    if call_status in _TWILIO_ALIASES:
        return _TWILIO_ALIASES[call_status]
    if call_status in _TWILIO_FINAL or call_status in (RINGING, IN_PROGRESS):
        return call_status
    return None


def advances(current: str, new: str) -> bool:
    """Statuses only move forward, and a final status absorbs everything after it. A call
    waiting for its hours is never claimed from there: it is queued first, when they open."""
    if current == SCHEDULED and new not in FINAL:
        return False
    return current not in FINAL and rank(new) > rank(current)


# The moves back: a claim handed back to the queue (Twilio never had the call), a call
# waiting for credits and queued again once they arrive, and a call waiting for its hours
# (found outside them when accepted, claimed or handed back) and queued again when they open.
_BACK = frozenset(
    {
        (DIALING, QUEUED),
        (QUEUED, INSUFFICIENT_CREDITS),
        (INSUFFICIENT_CREDITS, QUEUED),
        (QUEUED, SCHEDULED),
        (INSUFFICIENT_CREDITS, SCHEDULED),
        (SCHEDULED, QUEUED),
        (SCHEDULED, SCHEDULED),
    }
)


def allowed(current: str, new: str) -> bool:
    """The machine: forward, or one of the moves back."""
    return advances(current, new) or (current, new) in _BACK


def before(new: str) -> tuple[str, ...]:
    """The statuses a call may move to `new` from."""
    return tuple(status for status in ALL if allowed(status, new))
