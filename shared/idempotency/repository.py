from datetime import datetime

from sqlalchemy import CursorResult, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from shared.models import IdempotencyKey, new_id, utcnow


def reserve(
    session: Session, account_id: str, key: str, method: str, path: str, body_hash: str
) -> None:
    """The key in progress, unless the account has it already."""
    session.execute(
        insert(IdempotencyKey)
        .values(
            id=new_id(),
            account_id=account_id,
            key=key,
            method=method,
            path=path,
            body_hash=body_hash,
            status="in-progress",
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["account_id", "key"])
    )


def lock(session: Session, account_id: str, key: str) -> IdempotencyKey | None:
    """The key's row, locked until the caller's transaction ends; None while another
    transaction holds it."""
    return session.scalar(
        select(IdempotencyKey)
        .where(IdempotencyKey.account_id == account_id, IdempotencyKey.key == key)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )


def wait_for(session: Session, row_id: str) -> None:
    """The key's row locked until the caller's transaction ends, waiting for a transaction that
    holds it."""
    session.execute(select(IdempotencyKey.id).where(IdempotencyKey.id == row_id).with_for_update())


def complete(
    session: Session,
    row_id: str,
    method: str,
    path: str,
    body_hash: str,
    response_status: int,
    response_body: str,
) -> None:
    session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.id == row_id)
        .values(
            method=method,
            path=path,
            body_hash=body_hash,
            status="done",
            response_status=response_status,
            response_body=response_body,
            completed_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )


def delete_older_than(session: Session, cutoff: datetime) -> int:
    """Keys reserved and answered before the cutoff; rows a request holds are left for the
    next run."""
    expired = (
        select(IdempotencyKey.id)
        .where(
            IdempotencyKey.created_at < cutoff,
            func.coalesce(IdempotencyKey.completed_at, IdempotencyKey.created_at) < cutoff,
        )
        .with_for_update(skip_locked=True)
    )
    result: CursorResult = session.execute(  # type: ignore[assignment]
        delete(IdempotencyKey)
        .where(IdempotencyKey.id.in_(expired))
        .execution_options(synchronize_session=False)
    )
    return result.rowcount
