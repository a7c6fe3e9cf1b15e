"""A call as GET /api/calls/{id} shows it: what the API answers, and what its events carry."""

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.calls import status as st
from shared.calls.schemas import CallError, CallHold, CallOut, TimelineStep
from shared.models import Call, CallEvent


def timeline(call: Call, events: Sequence[CallEvent]) -> list[TimelineStep]:
    """Queued, then each status Twilio reported in SequenceNumber order, then the final status
    when it came another way (canceled before dialing, failed at the claim)."""
    steps = [TimelineStep(status=st.QUEUED, at=call.created_at)]
    steps += [
        TimelineStep(status=e.status, at=e.occurred_at, sequenceNumber=e.sequence_number)
        for e in events
    ]
    if call.status in st.FINAL and steps[-1].status != call.status:
        steps.append(TimelineStep(status=call.status, at=call.ended_at or call.updated_at))
    return steps


def _events_of(session: Session, call_ids: Sequence[str]) -> dict[str, list[CallEvent]]:
    found: dict[str, list[CallEvent]] = {call_id: [] for call_id in call_ids}
    if not call_ids:
        return found
    rows = session.scalars(
        select(CallEvent)
        .where(CallEvent.call_id.in_(call_ids))
        .order_by(CallEvent.call_id, CallEvent.sequence_number, CallEvent.occurred_at)
    )
    for event in rows:
        found[event.call_id].append(event)
    return found


def shown(call: Call, events: Sequence[CallEvent]) -> CallOut:
    error = (
        CallError(code=call.error_code, message=call.error_message)
        if call.error_code or call.error_message
        else None
    )
    return CallOut(
        id=call.id,
        callSid=call.twilio_sid,
        status=call.status,
        campaignId=call.campaign_id,
        batchId=call.batch_id,
        name=call.name,
        phoneNumber=call.to_number,
        fromNumber=call.from_number,
        durationSeconds=call.duration_seconds,
        hangupRequested=call.hangup_requested,
        optedOut=call.opted_out_at is not None,
        createdAt=call.created_at,
        dialedAt=call.dialed_at,
        answeredAt=call.answered_at,
        endedAt=call.ended_at,
        timezone=call.timezone,
        startAt=call.start_at,
        notAfter=call.not_after,
        notBefore=call.not_before if call.status == st.SCHEDULED else None,
        hold=_hold(call),
        error=error,
        timeline=timeline(call, events),
        webhook=call.webhook,
    )


def _hold(call: Call) -> CallHold | None:
    if call.status not in (st.SCHEDULED, st.EXPIRED) or call.hold_rule is None:
        return None
    return CallHold(reason=call.hold_reason, rule=call.hold_rule)


_JSON_TIME = TypeAdapter(datetime)


def _json_time(value: datetime | None) -> str | None:
    return None if value is None else _JSON_TIME.dump_python(value, mode="json")


def shown_new(row: Mapping[str, Any], created_at: str) -> dict[str, Any]:
    """A call just inserted as a row, as `shown` dumps it to JSON, built directly: a batch
    shows 100,000 of them in its request. `created_at` is the row's time as JSON writes it."""
    scheduled = row.get("not_before") is not None
    return {
        "id": row["id"],
        "callSid": None,
        "status": st.SCHEDULED if scheduled else st.QUEUED,
        "campaignId": row["campaign_id"],
        "batchId": row.get("batch_id"),
        "name": row.get("name", ""),
        "phoneNumber": row["to_number"],
        "fromNumber": row["from_number"],
        "durationSeconds": None,
        "hangupRequested": False,
        "optedOut": False,
        "createdAt": created_at,
        "dialedAt": None,
        "answeredAt": None,
        "endedAt": None,
        "timezone": row.get("timezone"),
        "startAt": _json_time(row.get("start_at")),
        "notAfter": _json_time(row.get("not_after")),
        "notBefore": _json_time(row.get("not_before")),
        "hold": {"reason": row.get("hold_reason"), "rule": row.get("hold_rule")}
        if scheduled
        else None,
        "error": None,
        "timeline": [{"status": st.QUEUED, "at": created_at, "sequenceNumber": None}],
        "webhook": row.get("webhook"),
    }


def out(session: Session, call: Call) -> CallOut:
    return shown(call, _events_of(session, [call.id])[call.id])


def out_many(session: Session, calls: Sequence[Call]) -> list[CallOut]:
    """Many calls with one read of their Twilio events."""
    events = _events_of(session, [call.id for call in calls])
    return [shown(call, events[call.id]) for call in calls]
