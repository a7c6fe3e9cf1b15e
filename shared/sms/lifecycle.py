"""The one place an SMS's status changes: each move is a conditional UPDATE that the machine
(`status.allowed`) permits, and appends the message's event in the same transaction (see
`calls.lifecycle`, whose reasoning holds here too)."""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, update
from sqlalchemy.orm import Session

from shared import events
from shared.events import types
from shared.models import SmsMessage, utcnow
from shared.sms import status as st
from shared.sms import views


def accept(session: Session, sms: SmsMessage) -> None:
    """A new message, queued, with its first event."""
    sms.status = st.QUEUED
    session.add(sms)
    session.flush()
    _appended(session, [sms])


def move(
    session: Session, sms_id: str, new_status: str, *where: ColumnElement[bool], **values: Any
) -> SmsMessage | None:
    """Move the SMS to `new_status` where the machine allows it and `where` holds, with
    `values` set alongside. The message as it is now, or None when it did not move."""
    moved = move_many(session, [SmsMessage.id == sms_id, *where], new_status, **values)
    return moved[0] if moved else None


def move_many(
    session: Session, where: Sequence[ColumnElement[bool]], new_status: str, **values: Any
) -> list[SmsMessage]:
    """Every message matching `where` that the machine allows, in one UPDATE ... RETURNING."""
    moved = list(
        session.scalars(
            update(SmsMessage)
            .where(*where, SmsMessage.status.in_(st.before(new_status)))
            .values(status=new_status, **{"updated_at": utcnow(), **values})
            .returning(SmsMessage),
            execution_options={"synchronize_session": False, "populate_existing": True},
        )
    )
    _appended(session, moved)
    return moved


def _appended(session: Session, messages: Sequence[SmsMessage]) -> None:
    events.append_many(
        session,
        [
            events.Draft(
                sms.account_id,
                types.for_status(types.SMS, sms.status),
                types.SMS,
                sms.id,
                views.out(sms),
            )
            for sms in messages
        ],
    )
