from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, func, insert, select, update
from sqlalchemy.orm import Session

from shared.calls import repository as calls_repository
from shared.calls import status as st
from shared.models import Batch, Call, utcnow

INSERT_CHUNK = 5_000


def insert_calls(session: Session, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), INSERT_CHUNK):
        session.execute(insert(Call), rows[start : start + INSERT_CHUNK])


def get_for_account(session: Session, account_id: str, batch_id: str) -> Batch | None:
    return session.scalar(select(Batch).where(Batch.id == batch_id, Batch.account_id == account_id))


def counts_by_status(session: Session, batch_id: str) -> dict[str, int]:
    rows = session.execute(
        select(Call.status, func.count()).where(Call.batch_id == batch_id).group_by(Call.status)
    )
    return {status: count for status, count in rows}


def move(session: Session, batch_id: str, new_status: str, from_statuses: Sequence[str]) -> bool:
    """Change the batch's status only from one of these, and only while a call of it has yet to
    end (a completed batch stays completed). One conditional UPDATE, which PostgreSQL checks
    again on the row a concurrent change left: a resume that read `paused` while a cancel was
    committing finds the batch canceled and changes nothing."""
    unfinished = (
        select(Call.id).where(Call.batch_id == Batch.id, Call.status.not_in(st.FINAL)).exists()
    )
    result: CursorResult = session.execute(  # type: ignore[assignment]
        update(Batch)
        .where(Batch.id == batch_id, Batch.status.in_(from_statuses), unfinished)
        .values(status=new_status, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def mark_running(session: Session, batch_ids: Sequence[str]) -> None:
    """Queued batches whose first calls were just claimed are running now. A batch whose row
    another transaction holds is skipped, not waited for: the claim holds the batch's call rows
    by then, and a pause or cancel holds the batch's row before it changes its calls (as a
    worker handing a call back does), so waiting here closed a circle the database broke by
    failing the tick. The holder pauses or cancels the batch; a batch skipped otherwise is marked
    by its next claim."""
    free = (
        select(Batch.id)
        .where(Batch.id.in_(batch_ids), Batch.status == "queued")
        .with_for_update(skip_locked=True)
    )
    session.execute(
        update(Batch)
        .where(Batch.id.in_(free), Batch.status == "queued")
        .values(status="running", updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def has_unfinished(session: Session, batch_id: str) -> bool:
    return (
        session.scalar(
            select(Call.id).where(Call.batch_id == batch_id, Call.status.not_in(st.FINAL)).limit(1)
        )
        is not None
    )


def unhand_queued(session: Session, batch_id: str) -> None:
    session.execute(
        update(Call)
        .where(Call.batch_id == batch_id, Call.status == st.QUEUED)
        .values(handed_at=None)
    )


def cancel_unstarted(session: Session, batch_id: str) -> int:
    now = utcnow()
    unstarted = calls_repository.locking(
        Call.batch_id == batch_id, Call.status.in_((st.QUEUED, st.INSUFFICIENT_CREDITS))
    )
    result: CursorResult = session.execute(  # type: ignore[assignment]
        update(Call)
        .where(Call.id.in_(unstarted))
        .values(status=st.CANCELED, ended_at=now, updated_at=now)
    )
    return result.rowcount


def live_call_ids(session: Session, batch_id: str) -> list[str]:
    return list(
        session.scalars(
            select(Call.id).where(
                Call.batch_id == batch_id, Call.status.in_((st.DIALING, *st.LIVE))
            )
        )
    )


def dials_since(session: Session, batch_id: str, since: datetime) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(Call)
            .where(Call.batch_id == batch_id, Call.dialed_at >= since)
        )
        or 0
    )
