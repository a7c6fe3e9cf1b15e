"""The one place a batch's status changes: each move is a conditional UPDATE from the statuses
the machine allows it from, and appends the batch's event in the same transaction.

Of a pause, a resume and a cancel at once, each sees what the ones that committed before it
left (PostgreSQL checks the WHERE again on the row a concurrent change left), and canceled and
completed absorb everything after them.

Whether a batch has completed or waits for credits follows from its calls, which change in
transactions of their own (a callback, a claim, a settlement): two calls ending at once each
see the other not ended yet. So once such a change has committed, `follow` looks at the batch
again in a transaction of its own, holding the batch's row while it looks and moves it, so two
of them look one after the other and the second sees what the first did; `sweep` follows any
batch a process died before following.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from sqlalchemy import ColumnElement, Update, exists, select, update
from sqlalchemy.orm import Session

from shared import events
from shared.after_commit import on_commit
from shared.batches import status as bst
from shared.batches import views
from shared.calls import lifecycle as calls_lifecycle
from shared.calls import status as call_status
from shared.db import session_scope
from shared.events import types
from shared.models import Batch, Call, utcnow


@dataclass(frozen=True)
class Move:
    to: str
    sources: tuple[str, ...]
    event: str


START = Move(bst.RUNNING, (bst.QUEUED,), "batch.started")
PAUSE = Move(bst.PAUSED, (bst.QUEUED, bst.RUNNING, bst.INSUFFICIENT_CREDITS), "batch.paused")
RESUME = Move(bst.RUNNING, (bst.PAUSED,), "batch.resumed")
# Credits arrived for the calls that waited: the batch goes on.
REFILL = Move(bst.RUNNING, (bst.INSUFFICIENT_CREDITS,), "batch.resumed")
WAIT_FOR_CREDITS = Move(
    bst.INSUFFICIENT_CREDITS, (bst.QUEUED, bst.RUNNING), "batch.insufficient_credits"
)
COMPLETE = Move(bst.COMPLETED, bst.ACTIVE, "batch.completed")
CANCEL = Move(bst.CANCELED, bst.ACTIVE, "batch.canceled")

_NOT_ENDED = tuple(s for s in call_status.ALL if s not in call_status.FINAL)
_GOING = tuple(s for s in _NOT_ENDED if s != call_status.INSUFFICIENT_CREDITS)
_STARTED = tuple(
    s
    for s in call_status.ALL
    if s not in (call_status.QUEUED, call_status.INSUFFICIENT_CREDITS, call_status.SCHEDULED)
    # A call that expired was never placed: it does not start its batch.
    and s != call_status.EXPIRED
)


def _calls(batch_id: str, statuses: Sequence[str]) -> ColumnElement[bool]:
    return exists().where(Call.batch_id == batch_id, Call.status.in_(statuses))


def create(session: Session, batch: Batch) -> None:
    """A new batch, queued until its first call is claimed (its calls' events tell that they
    are queued)."""
    batch.status = bst.QUEUED
    session.add(batch)
    session.flush()


def move(session: Session, batch_id: str, change: Move) -> Batch | None:
    """Make the move if the batch's status is one it is allowed from; every move but COMPLETE
    only while a call of the batch has yet to end (a batch whose calls have all ended is
    completed, whether or not `follow` has stored that yet). The batch as it is now, or None."""
    moved = _moved(session, _guarded(batch_id, change), change)
    return moved[0] if moved else None


def _guarded(batch_id: str, change: Move) -> Update:
    ended = ~_calls(batch_id, _NOT_ENDED)
    return update(Batch).where(
        Batch.id == batch_id,
        Batch.status.in_(change.sources),
        ended if change is COMPLETE else ~ended,
    )


def cancel(session: Session, batch_id: str) -> tuple[Batch | None, int]:
    """Cancel the batch and every call of it not yet handed to Twilio; its event shows the
    calls canceled. A canceled batch's calls left unstarted (a worker handed one back) are
    canceled again, with no second event for the batch. The batch if it moved, and how many
    calls were canceled."""
    # The batch's row is held before its calls, canceled or not: a worker handing a call back
    # meanwhile waits for the cancel and sees it (`calls.service.release`).
    session.execute(select(Batch.id).where(Batch.id == batch_id).with_for_update(key_share=True))
    moved = _update(session, _guarded(batch_id, CANCEL), CANCEL)
    canceled = calls_lifecycle.move_many(
        session,
        [
            Call.batch_id == batch_id,
            Call.status.in_(
                (call_status.QUEUED, call_status.INSUFFICIENT_CREDITS, call_status.SCHEDULED)
            ),
        ],
        call_status.CANCELED,
        ended_at=utcnow(),
    )
    _announce(session, moved, CANCEL)
    return (moved[0] if moved else None), len(canceled)


def start_many(session: Session, batch_ids: Sequence[str]) -> list[Batch]:
    """Queued batches whose first calls were just claimed are running now. A batch whose row
    another transaction holds is skipped, not waited for: the claim holds the batch's call rows
    by then, and a pause or cancel holds the batch's row before it changes its calls (as a
    worker handing a call back does), so waiting here closed a circle the database broke by
    failing the tick. The holder pauses or cancels the batch; a batch skipped otherwise is
    started by its next claim, or by `follow` once one of its calls ends."""
    free = (
        select(Batch.id)
        .where(Batch.id.in_(batch_ids), Batch.status == bst.QUEUED)
        .with_for_update(skip_locked=True)
    )
    return _moved(
        session, update(Batch).where(Batch.id.in_(free), Batch.status.in_(START.sources)), START
    )


def _moved(session: Session, statement: Update, change: Move) -> list[Batch]:
    moved = _update(session, statement, change)
    _announce(session, moved, change)
    return moved


def _update(session: Session, statement: Update, change: Move) -> list[Batch]:
    return list(
        session.scalars(
            statement.values(status=change.to, updated_at=utcnow()).returning(Batch),
            execution_options={"synchronize_session": False, "populate_existing": True},
        )
    )


def _announce(session: Session, moved: Sequence[Batch], change: Move) -> None:
    events.append_many(
        session,
        [
            events.Draft(
                batch.account_id, change.event, types.BATCH, batch.id, views.out(session, batch)
            )
            for batch in moved
        ],
    )


def follow_on_commit(session: Session, batch_id: str) -> None:
    """Follow the batch once this transaction has committed (once, however many of its calls
    changed in it)."""
    on_commit(session, partial(follow, batch_id), key=("batch", batch_id))


def follow(batch_id: str) -> None:
    """After a change of the batch's calls has committed: the moves their statuses call for."""
    with session_scope() as session:
        settle(session, batch_id)


def settle(session: Session, batch_id: str) -> None:
    """Move the batch as its calls now say: started once one has left the queue, waiting for
    credits while every call not ended waits for them (or going on once one no longer does),
    completed once all have ended. The batch's row is held from the look to the commit."""
    status = session.scalar(
        select(Batch.status).where(Batch.id == batch_id).with_for_update(key_share=True)
    )
    if status is None or status in bst.FINAL:
        return
    going, waiting, started = session.execute(
        select(
            _calls(batch_id, _GOING),
            _calls(batch_id, (call_status.INSUFFICIENT_CREDITS,)),
            _calls(batch_id, _STARTED),
        )
    ).one()
    if status == bst.QUEUED and started:
        move(session, batch_id, START)
    if not going and not waiting:
        move(session, batch_id, COMPLETE)
    elif not going:
        move(session, batch_id, WAIT_FOR_CREDITS)
    else:
        move(session, batch_id, REFILL)


def sweep(session: Session) -> int:
    """Follow the batches whose stored status their calls no longer bear out (the process that
    was to follow them died first): the conditions of `settle`'s moves."""
    due = list(
        session.scalars(
            select(Batch.id).where(
                Batch.status.in_(bst.ACTIVE),
                ~_row_has(_NOT_ENDED)
                | (Batch.status.in_(WAIT_FOR_CREDITS.sources) & ~_row_has(_GOING))
                | (Batch.status.in_(REFILL.sources) & _row_has(_GOING))
                | (Batch.status.in_(START.sources) & _row_has(_STARTED)),
            )
        )
    )
    for batch_id in due:
        follow(batch_id)
    return len(due)


def _row_has(statuses: Sequence[str]) -> ColumnElement[bool]:
    return exists().where(Call.batch_id == Batch.id, Call.status.in_(statuses))
