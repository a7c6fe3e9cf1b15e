from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from shared.calls import repository as calls_repository
from shared.calls import status as st
from shared.models import Batch, Call


def get_for_account(session: Session, account_id: str, batch_id: str) -> Batch | None:
    return session.scalar(select(Batch).where(Batch.id == batch_id, Batch.account_id == account_id))


def counts_by_status(session: Session, batch_id: str) -> dict[str, int]:
    rows = session.execute(
        select(Call.status, func.count()).where(Call.batch_id == batch_id).group_by(Call.status)
    )
    return {status: count for status, count in rows}


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
        .where(
            Call.id.in_(
                calls_repository.locking(Call.batch_id == batch_id, Call.status == st.QUEUED)
            )
        )
        .values(handed_at=None)
    )


def live_call_ids(session: Session, batch_id: str) -> list[str]:
    """In id order: a cancel hangs them up, and so locks them, one by one in this order, as
    every statement that changes many calls takes its rows (`calls.repository.locking`)."""
    return list(
        session.scalars(
            select(Call.id)
            .where(Call.batch_id == batch_id, Call.status.in_((st.DIALING, *st.LIVE)))
            .order_by(Call.id)
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


def next_opening(session: Session, batch_id: str) -> datetime | None:
    """When the first of the batch's calls waiting for their hours may be placed."""
    return session.scalar(
        select(func.min(Call.not_before)).where(
            Call.batch_id == batch_id, Call.status == st.SCHEDULED
        )
    )
