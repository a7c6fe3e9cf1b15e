"""Why a call was placed when it was, or not at all: its events, each explained, and the
do-not-contact list's changes of its number, which held it back or let it go."""

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.calls import service as calls_service
from shared.calls import status as st
from shared.compliance.schemas import CallExplanation, ExplainedStep, ListChange
from shared.dnc import service as dnc
from shared.events import types
from shared.models import Call, Event

_WHY = {
    "call.insufficient_credits": "waited for credits: the balance could not reserve its longest "
    "length",
    "call.scheduled": "waited for its calling hours or its startAt",
    "call.dialing": "claimed for a worker, its reservation held",
    "call.initiated": "handed to Twilio: the last look before the request found it allowed "
    "(not hung up, its batch running, its account unblocked, its caller ID the account's, "
    "its number on no do-not-contact list)",
    "call.ringing": "ringing (Twilio)",
    "call.answered": "answered (Twilio)",
    "call.completed": "completed (Twilio)",
    "call.busy": "busy (Twilio)",
    "call.no_answer": "not answered (Twilio)",
    "call.expired": "not placed by its notAfter",
}


def _queued_why(before: Event | None) -> str:
    """A call is queued when accepted, or again by what ended the wait before it."""
    if before is None:
        return "accepted: its number was on no do-not-contact list, and it waits its turn"
    if before.type == "call.scheduled":
        data: dict[str, Any] = before.data or {}
        hold = data.get("hold") or {}
        rule = f" (rule {hold['rule']})" if hold.get("rule") else ""
        return f"queued as the wait ended: {data.get('notBefore', 'its time')} came{rule}"
    if before.type == "call.insufficient_credits":
        return "queued again: credits arrived"
    return "queued again: a claim Twilio never had was handed back"


def _why(event: Event, before: Event | None) -> str:
    data: dict[str, Any] = event.data or {}
    error = data.get("error") or {}
    message = error.get("message") if isinstance(error, dict) else None
    if event.type == "call.queued":
        return _queued_why(before)
    hold = data.get("hold") or {}
    if event.type == "call.scheduled" and data.get("notBefore"):
        why = f": {hold['reason']} (rule {hold['rule']})" if hold.get("rule") else ""
        return f"waited until {data['notBefore']}{why}"
    if event.type == "call.expired" and hold.get("rule"):
        return f"not placed: {hold['reason']} (rule {hold['rule']})"
    if event.type == "call.suppressed":
        return f"not placed: {message}" if message else "not placed: its number was listed"
    if event.type == "call.failed":
        return f"failed: {message}" if message else "failed"
    if event.type == "call.canceled":
        if data.get("dialedAt") is None:
            return "canceled before it was placed (a hang-up, or its batch's cancel)"
        return "canceled"
    return _WHY.get(event.type, event.type)


def _rule(event: Event) -> str | None:
    """The rule that held the call back: a calling-hours rule, startAt or notAfter, or the
    do-not-contact list."""
    if event.type == "call.suppressed":
        return "do-not-contact"
    hold = (event.data or {}).get("hold")
    return hold.get("rule") if isinstance(hold, dict) else None


def _verdict(call: Call) -> str:
    if call.dialed_at is not None or call.twilio_sid is not None:
        when = call.dialed_at.isoformat() if call.dialed_at else "a time Twilio knows"
        return f"placed at {when}, the first moment it was claimed and allowed"
    if call.status == st.SUPPRESSED:
        return f"never placed: {call.error_message}"
    if call.status == st.EXPIRED:
        return f"never placed: expired, {call.hold_reason} (rule {call.hold_rule})"
    if call.status == st.SCHEDULED and call.not_before is not None:
        return (
            f"not placed yet: waits until {call.not_before.isoformat()}, {call.hold_reason} "
            f"(rule {call.hold_rule})"
        )
    if call.status in st.FINAL:
        why = f": {call.error_message}" if call.error_message else ""
        return f"never placed: {call.status}{why}"
    return f"not placed yet: {call.status}"


def explain_call(session: Session, account_id: str, ref: str) -> CallExplanation:
    """Raises CallNotFound."""
    call = calls_service.get_for_account(session, account_id, ref)
    events = list(
        session.scalars(
            select(Event)
            .where(Event.subject_type == types.CALL, Event.subject_id == call.id)
            .order_by(Event.sequence)
        )
    )
    changes = []
    for list_account, name in ((account_id, "account"), (None, "operators")):
        entry = dnc.entry(session, list_account, call.to_number)
        if entry is None:
            continue
        changes += [
            ListChange(
                list=name, action=c.action, reason=c.reason, source=c.source, at=c.created_at
            )
            for c in dnc.history(session, entry)
        ]
    changes.sort(key=lambda change: change.at)
    return CallExplanation(
        callId=call.id,
        phoneNumber=call.to_number,
        status=call.status,
        placed=call.dialed_at is not None or call.twilio_sid is not None,
        placedAt=call.dialed_at,
        verdict=_verdict(call),
        steps=[
            ExplainedStep(
                at=event.created_at,
                event=event.type,
                why=_why(event, events[index - 1] if index else None),
                rule=_rule(event),
            )
            for index, event in enumerate(events)
        ],
        doNotContact=changes,
        listedNow=dnc.listed(session, account_id, call.to_number) is not None,
    )
