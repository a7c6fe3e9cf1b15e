"""Appending events: in the transaction of the change they tell of, numbered per subject.

A subject's next number is one more than the highest it has, read in the INSERT itself. Two
transactions appending to one subject at once would read the same highest number: the unique
(subject_type, subject_id, sequence) makes the second wait for the first, and ON CONFLICT DO
NOTHING then skips its row rather than failing, so it reads the number again once the first
has committed. The status changes that append hold the subject's row already (their UPDATE
locks it until commit), so the second transaction mostly waits there and never conflicts.
Subjects inserted in the transaction itself (a batch's calls) skip the read: `append_first`.
"""

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import delete, text, tuple_
from sqlalchemy.orm import Session

from shared.events import types
from shared.models import Event, utcnow
from shared.models.event import new_event_id
from shared.webhooks import fanout as webhooks

# A subject skipped this many times over is being appended to by something that does not
# commit: better an error than a loop.
_TRIES = 5

_INSERT = text(
    """
    INSERT INTO events (id, account_id, type, subject_type, subject_id, sequence, created_at, data)
    SELECT d.id, d.account_id, d.type, d.subject_type, d.subject_id,
           coalesce(
               (SELECT max(e.sequence) FROM events e
                WHERE e.subject_type = d.subject_type AND e.subject_id = d.subject_id),
               0
           ) + d.place,
           :created_at, d.data
    FROM ROWS FROM (
        unnest(CAST(:ids AS text[])), unnest(CAST(:account_ids AS text[])),
        unnest(CAST(:types AS text[])), unnest(CAST(:subject_types AS text[])),
        unnest(CAST(:subject_ids AS text[])), unnest(CAST(:places AS integer[])),
        jsonb_array_elements(CAST(:data AS jsonb))
    ) AS d(id, account_id, type, subject_type, subject_id, place, data)
    ON CONFLICT (subject_type, subject_id, sequence) DO NOTHING
    RETURNING id, sequence
    """
)

# The first events of subjects made in this transaction: numbered by their place alone. No
# other transaction can have appended to a subject it cannot see yet, so there is no highest
# number to read and no conflict to skip; were there one, the unique index fails the change.
_INSERT_FIRST = text(
    """
    INSERT INTO events (id, account_id, type, subject_type, subject_id, sequence, created_at, data)
    SELECT d.id, d.account_id, d.type, d.subject_type, d.subject_id, d.place, :created_at, d.data
    FROM ROWS FROM (
        unnest(CAST(:ids AS text[])), unnest(CAST(:account_ids AS text[])),
        unnest(CAST(:types AS text[])), unnest(CAST(:subject_types AS text[])),
        unnest(CAST(:subject_ids AS text[])), unnest(CAST(:places AS integer[])),
        jsonb_array_elements(CAST(:data AS jsonb))
    ) AS d(id, account_id, type, subject_type, subject_id, place, data)
    """
)


@dataclass(slots=True)
class Appended:
    """An event as written: an Event's fields, without the ORM's cost per object (a batch's
    100,000 calls append 100,000 events in its request)."""

    id: str
    account_id: str
    type: str
    subject_type: str
    subject_id: str
    created_at: datetime
    data: dict[str, Any]
    sequence: int = 0


@dataclass(frozen=True)
class Draft:
    """An event to append: what happened to which subject, and the subject as its GET shows it
    now (a pydantic model, or the JSON object itself)."""

    account_id: str
    type: str
    subject_type: str
    subject_id: str
    data: BaseModel | Mapping[str, Any]


def append(
    session: Session,
    account_id: str,
    type: str,
    subject_type: str,
    subject_id: str,
    data: BaseModel | Mapping[str, Any],
) -> Event:
    """Append one event; it commits or rolls back with the session's transaction."""
    [written] = append_many(session, [Draft(account_id, type, subject_type, subject_id, data)])
    return Event(
        id=written.id,
        account_id=written.account_id,
        type=written.type,
        subject_type=written.subject_type,
        subject_id=written.subject_id,
        sequence=written.sequence,
        created_at=written.created_at,
        data=written.data,
    )


def append_many(session: Session, drafts: Sequence[Draft]) -> list[Appended]:
    """Append events in one statement (a bulk status change's), in the order given: a subject's
    events take its next numbers in that order, and are owed to the account's webhook endpoints
    they match in the same transaction. Returns them as written (not in the session)."""
    if not drafts:
        return []
    created_at = utcnow()
    events = _drafted(drafts, created_at)
    todo = events
    for _ in range(_TRIES):
        numbered = _insert(session, todo, created_at)
        for event in todo:
            event.sequence = numbered.get(event.id, 0)
        skipped = {(e.subject_type, e.subject_id) for e in todo if e.id not in numbered}
        if not skipped:
            webhooks.fan_out(session, events)
            return events
        # A subject's events go in again together, so their order holds: those of its events
        # that went in are taken out again first.
        session.execute(
            delete(Event).where(
                tuple_(Event.subject_type, Event.subject_id).in_(list(skipped)),
                Event.id.in_([e.id for e in todo if e.id in numbered]),
            )
        )
        todo = [e for e in todo if (e.subject_type, e.subject_id) in skipped]
    raise RuntimeError(f"events of {sorted(skipped)} found their numbers taken {_TRIES} times")


def append_first(session: Session, drafts: Sequence[Draft]) -> list[Appended]:
    """Append the first events of subjects inserted in this transaction (a batch's new calls),
    as `append_many` does, but numbered 1, 2, ... per subject in the order given without reading
    the log: a subject nobody else can see yet has no events."""
    if not drafts:
        return []
    created_at = utcnow()
    events = _drafted(drafts, created_at)
    places = _places(events)
    for event, place in zip(events, places, strict=True):
        event.sequence = place
    session.execute(_INSERT_FIRST, _parameters(events, places, created_at))
    webhooks.fan_out(session, events)
    return events


def _drafted(drafts: Sequence[Draft], created_at: datetime) -> list[Appended]:
    events = [
        Appended(
            new_event_id(),
            draft.account_id,
            draft.type,
            draft.subject_type,
            draft.subject_id,
            created_at,
            _json(draft.data),
        )
        for draft in drafts
    ]
    for event in events:
        assert event.type in types.ALL and event.subject_type in types.SUBJECT_TYPES, event.type
    return events


def _places(events: Sequence[Appended]) -> list[int]:
    """Each event's place among its subject's events here: 1 for its first, 2 for the next."""
    places: dict[tuple[str, str], int] = {}
    ordinals = []
    for event in events:
        key = (event.subject_type, event.subject_id)
        places[key] = places.get(key, 0) + 1
        ordinals.append(places[key])
    return ordinals


def _parameters(
    events: Sequence[Appended], places: Sequence[int], created_at: datetime
) -> dict[str, Any]:
    return {
        "ids": [e.id for e in events],
        "account_ids": [e.account_id for e in events],
        "types": [e.type for e in events],
        "subject_types": [e.subject_type for e in events],
        "subject_ids": [e.subject_id for e in events],
        "places": list(places),
        # One JSON array, not a jsonb[]: the driver quotes each element of an array of text
        # character by character, which cost more than the INSERT itself.
        "data": json.dumps([e.data for e in events]),
        "created_at": created_at,
    }


def _insert(session: Session, events: list[Appended], created_at: datetime) -> dict[str, int]:
    rows = session.execute(_INSERT, _parameters(events, _places(events), created_at))
    return {event_id: sequence for event_id, sequence in rows}


def _json(data: BaseModel | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(data, BaseModel):
        return data.model_dump(mode="json")
    return dict(data)
