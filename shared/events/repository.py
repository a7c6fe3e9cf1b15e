from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from shared.dnc import refusals
from shared.events import types
from shared.events.schemas import EventOut
from shared.models import Event


def get_for_account(session: Session, account_id: str, event_id: str) -> Event | None:
    return session.scalar(select(Event).where(Event.id == event_id, Event.account_id == account_id))


def page(
    session: Session,
    account_id: str,
    *,
    patterns: Sequence[str] = (),
    subject_id: str | None = None,
    number: str | None = None,
    since: datetime | None = None,
    before_id: str | None = None,
    limit: int,
) -> tuple[list[Event], bool]:
    """The account's events newest first, older than `before_id` (a cursor), and whether more
    follow. Read by the index on (account_id, id DESC); a subject's by its unique index."""
    query = select(Event).where(Event.account_id == account_id)
    if patterns and "*" not in patterns:
        query = query.where(
            or_(*(Event.type.like(types.like(pattern), escape="\\") for pattern in patterns))
        )
    if subject_id is not None:
        # Every subject type named, so the (subject_type, subject_id, sequence) index serves.
        query = query.where(
            Event.subject_type.in_(types.SUBJECT_TYPES), Event.subject_id == subject_id
        )
    if number is not None:
        # A single call's or SMS's refusal is its own subject: found by its number instead.
        query = query.where(Event.subject_type == types.REFUSAL, refusals.of_number(number))
    if since is not None:
        query = query.where(Event.created_at >= since)
    if before_id is not None:
        query = query.where(Event.id < before_id)
    rows = list(session.scalars(query.order_by(Event.id.desc()).limit(limit + 1)))
    return rows[:limit], len(rows) > limit


def out(event: Event) -> EventOut:
    return EventOut(
        id=event.id,
        type=event.type,
        subjectType=event.subject_type,
        subjectId=event.subject_id,
        sequence=event.sequence,
        createdAt=event.created_at,
        data=event.data,
    )
