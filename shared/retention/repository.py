"""One batch of each purge: the oldest rows still holding their payload, locked with SKIP LOCKED
(a row a callback or a worker holds is left for the next batch, and nothing waits on the purge),
emptied in the caller's short transaction; and the dispatchers' turns of groups that owe
nothing, and webhook deliveries that are over, deleted the same way."""

from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Select,
    and_,
    delete,
    exists,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.orm import InstrumentedAttribute, Session

from shared.calls import status as call_status
from shared.models import (
    Call,
    CallEvent,
    DispatchTurn,
    ExternalEvent,
    SmsMessage,
    SmsTurn,
    WebhookAttempt,
    WebhookDelivery,
)
from shared.sms import status as sms_status
from shared.webhooks.fanout import PENDING

# A call not over yet (queued, waiting for credits or its hours, out with a worker, live) may
# still want a turn: its group keeps its own.
_CALLS_ENDED = tuple(sorted(call_status.FINAL))


def _empty(
    session: Session,
    model: type[CallEvent] | type[SmsMessage] | type[ExternalEvent],
    column: str,
    cutoff: datetime,
    limit: int,
    *conditions: ColumnElement[bool],
    **kept: object,
) -> int:
    payload = getattr(model, column)
    batch = (
        select(model.id)
        .where(payload.is_not(None), model.created_at < cutoff, *conditions)
        .order_by(model.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    result: CursorResult = session.execute(  # type: ignore[assignment]
        update(model)
        .where(model.id.in_(batch.scalar_subquery()))
        .values({column: None, **kept})
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


def empty_call_event_params(session: Session, cutoff: datetime, limit: int) -> int:
    """Twilio's raw callback parameters. The event's status, time and SequenceNumber stay: the
    call's timeline, and the deduplication of a callback delivered again."""
    return _empty(session, CallEvent, "params", cutoff, limit)


def empty_sms_bodies(session: Session, cutoff: datetime, limit: int) -> int:
    """The text of messages Twilio has (or that ended): a queued message still needs its own,
    and one whose hand-over is in doubt is recognised at Twilio by it."""
    return _empty(
        session,
        SmsMessage,
        "body",
        cutoff,
        limit,
        or_(SmsMessage.twilio_sid.is_not(None), SmsMessage.status.in_(sms_status.FINAL)),
        updated_at=SmsMessage.updated_at,  # the message did not change
    )


def empty_stripe_payloads(session: Session, cutoff: datetime, limit: int) -> int:
    """Payloads of events applied or given up; one still to apply needs its own."""
    return _empty(
        session,
        ExternalEvent,
        "payload",
        cutoff,
        limit,
        or_(ExternalEvent.handled_at.is_not(None), ExternalEvent.dead_at.is_not(None)),
    )


def _delete_where_in(session: Session, key: InstrumentedAttribute[Any], chosen: Any) -> int:
    """Delete the rows of `key`'s table whose key is among `chosen` (ids, or a select of them):
    how many went."""
    if isinstance(chosen, Select):
        chosen = chosen.scalar_subquery()
    result: CursorResult = session.execute(  # type: ignore[assignment]
        delete(key.class_).where(key.in_(chosen)).execution_options(synchronize_session=False)
    )
    return result.rowcount


def delete_idle_dispatch_turns(session: Session, served_before: datetime, limit: int) -> int:
    """Turns of groups (a batch, or an account's single calls) last served before
    `served_before` whose calls are all over: a finished batch's for good. A group
    with no turn is served as one never served, first, where its old turn would have put it."""
    owed = exists().where(
        Call.status.not_in(_CALLS_ENDED),
        or_(
            Call.batch_id == DispatchTurn.batch_id,
            and_(
                DispatchTurn.batch_id.is_(None),
                Call.batch_id.is_(None),
                Call.account_id == DispatchTurn.account_id,
            ),
        ),
    )
    idle = (
        select(DispatchTurn.id)
        .where(DispatchTurn.served_at < served_before, ~owed)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return _delete_where_in(session, DispatchTurn.id, idle)


def delete_idle_sms_turns(session: Session, served_before: datetime, limit: int) -> int:
    """The SMS dispatcher's turns of accounts last served before `served_before` whose messages
    are all over (see `delete_idle_dispatch_turns`)."""
    owed = exists().where(
        SmsMessage.account_id == SmsTurn.account_id,
        SmsMessage.status.not_in(tuple(sorted(sms_status.FINAL))),
    )
    idle = (
        select(SmsTurn.account_id)
        .where(SmsTurn.served_at < served_before, ~owed)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return _delete_where_in(session, SmsTurn.account_id, idle)


# A delivery still pending is owed (or in flight): only one that is over (delivered or given
# up) may go. The state is written into the statement, as the index of those is made for
# (`state <> 'pending'`): bound, the generic plan of a statement run often could not use it.
_DELIVERY_OVER = WebhookDelivery.state != literal(PENDING, literal_execute=True)


def delete_finished_deliveries(session: Session, cutoff: datetime, limit: int) -> tuple[int, int]:
    """Webhook deliveries delivered or given up whose last change (their outcome, or a resend
    or replay owing them again) was before `cutoff`, with their attempts: how many of each.
    The events stay: the audit trail, and what a resend or replay sends again (it owes a
    delivery afresh)."""
    doomed = list(
        session.scalars(
            select(WebhookDelivery.id)
            .where(
                _DELIVERY_OVER,
                WebhookDelivery.updated_at < cutoff,
            )
            .order_by(WebhookDelivery.updated_at)
            .limit(limit)
            # Held for the delete, so a resend or replay owing one again waits for it and then
            # owes a new row; one a resend holds now is left for the next batch.
            .with_for_update(skip_locked=True)
        )
    )
    if not doomed:
        return 0, 0
    attempts = _delete_where_in(session, WebhookAttempt.delivery_id, doomed)
    return _delete_where_in(session, WebhookDelivery.id, doomed), attempts
