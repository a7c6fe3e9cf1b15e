from sqlalchemy import delete, exists, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from shared.models import CallerId


def of_account(session: Session, account_id: str) -> list[CallerId]:
    """The account's caller IDs, in the order they were added."""
    return list(
        session.scalars(
            select(CallerId)
            .where(CallerId.account_id == account_id)
            .order_by(CallerId.created_at, CallerId.id)
        )
    )


def first(session: Session, account_id: str) -> str | None:
    return session.scalar(
        select(CallerId.number)
        .where(CallerId.account_id == account_id)
        .order_by(CallerId.created_at, CallerId.id)
        .limit(1)
    )


def owns(session: Session, account_id: str, number: str) -> bool:
    return bool(
        session.scalar(
            select(exists().where(CallerId.account_id == account_id, CallerId.number == number))
        )
    )


def owner(session: Session, number: str) -> str | None:
    return session.scalar(select(CallerId.account_id).where(CallerId.number == number))


def insert_new(session: Session, account_id: str, number: str) -> CallerId | None:
    """The new row, or None when the number is already someone's. A number being added by
    another transaction at the same moment waits for it: None once it commits."""
    return session.scalar(
        insert(CallerId)
        .values(account_id=account_id, number=number)
        .on_conflict_do_nothing(index_elements=[CallerId.number])
        .returning(CallerId)
    )


def delete_one(session: Session, account_id: str, number: str) -> bool:
    result: CursorResult = session.execute(  # type: ignore[assignment]
        delete(CallerId).where(CallerId.account_id == account_id, CallerId.number == number)
    )
    return result.rowcount > 0
