from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from shared.calls import lifecycle as calls_lifecycle
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
    canceled = calls_lifecycle.move_many(
        session,
        [Call.batch_id == batch_id, Call.status.in_((st.QUEUED, st.INSUFFICIENT_CREDITS))],
        st.CANCELED,
        ended_at=utcnow(),
    )
    return len(canceled)


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
