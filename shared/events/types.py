"""The events' types, and the patterns that select them (`call.*`, `*`)."""

import re
from functools import lru_cache

CALL = "call"
SMS = "sms"
BATCH = "batch"
CREDITS = "credits"
WEBHOOK_ENDPOINT = "webhook_endpoint"
# A number on the account's do-not-contact list: the subject's id is its entry's.
DNC = "dnc"
# A single call or SMS refused at acceptance: there is no call or SMS row, so each refusal is a
# subject of its own (a new id, its one event numbered 1). Its number is only in its data: a
# subject shared by the accounts refusing one number would number their events together and
# tell each how often the others were refused.
REFUSAL = "refusal"
SUBJECT_TYPES = (CALL, SMS, BATCH, CREDITS, WEBHOOK_ENDPOINT, DNC, REFUSAL)

CALL_TYPES = (
    "call.queued",
    # Waiting for credits, and queued again (call.queued) once the balance covers it.
    "call.insufficient_credits",
    "call.scheduled",
    "call.dialing",
    "call.initiated",
    "call.ringing",
    "call.answered",
    "call.completed",
    "call.busy",
    "call.no_answer",
    "call.failed",
    "call.canceled",
    # Its number was put on a do-not-contact list after the call was accepted: never dialed.
    "call.suppressed",
    # Not placed by its notAfter.
    "call.expired",
)
# Refused at acceptance, its number on a do-not-contact list: a single call's (subject the
# refusal itself) or a batch's listed rows' (subject the batch), committed though the request
# is not.
CALL_REFUSED = "call.refused"
SMS_REFUSED = "sms.refused"
SMS_TYPES = (
    "sms.queued",
    # Claimed for sending, and with Twilio until it says sent (sms.queued again if not taken).
    "sms.sending",
    "sms.sent",
    "sms.delivered",
    "sms.undelivered",
    "sms.failed",
    # Its number was put on a do-not-contact list after the SMS was accepted: never sent.
    "sms.suppressed",
)
BATCH_TYPES = (
    "batch.started",
    "batch.paused",
    "batch.resumed",
    "batch.insufficient_credits",
    "batch.completed",
    "batch.canceled",
)
DNC_ADDED = "dnc.added"
DNC_REMOVED = "dnc.removed"
DNC_TYPES = (DNC_ADDED, DNC_REMOVED)
CREDITS_CHANGED = "credits.changed"
# Disabled by us: every attempt failed for the retry window, or it answered 410 Gone.
WEBHOOK_ENDPOINT_DISABLED = "webhook_endpoint.disabled"
ALL = (
    *CALL_TYPES,
    CALL_REFUSED,
    *SMS_TYPES,
    SMS_REFUSED,
    *BATCH_TYPES,
    CREDITS_CHANGED,
    WEBHOOK_ENDPOINT_DISABLED,
    *DNC_TYPES,
)

# A call's status that Twilio names by its progress rather than by what the customer sees.
_CALL_STATUS_NAMES = {"in-progress": "answered"}


def for_status(subject_type: str, status: str) -> str:
    """The event a subject's move to `status` appends: call.answered for a call's in-progress,
    call.no_answer for no-answer."""
    name = _CALL_STATUS_NAMES.get(status, status) if subject_type == CALL else status
    event_type = f"{subject_type}.{name.replace('-', '_').replace(' ', '_')}"
    assert event_type in ALL, event_type
    return event_type


def matches(pattern: str, event_type: str) -> bool:
    """`call.completed`, `call.*` or `*`: a `*` stands for any characters, and every other
    character for itself, as `like` has SQL read it (fnmatch's `?` and `[...]` would be wildcards
    to the deliveries and plain characters to the replay and GET /api/events)."""
    return _expression(pattern).fullmatch(event_type) is not None


@lru_cache(maxsize=1024)
def _expression(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


def known_pattern(pattern: str) -> bool:
    """Whether the pattern selects at least one type: a misspelt one would select nothing."""
    return any(matches(pattern, event_type) for event_type in ALL)


def like(pattern: str) -> str:
    """The pattern as SQL LIKE reads it, with backslash as the escape: a type's own `_` is a
    character to match, not LIKE's any-one-character."""
    return pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_").replace("*", "%")
