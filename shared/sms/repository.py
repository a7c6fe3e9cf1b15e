from datetime import datetime

from sqlalchemy import CursorResult, func, or_, select, update
from sqlalchemy.orm import Session

from shared.billing import disputes
from shared.models import SmsMessage, utcnow
from shared.sms import status as st


def get(session: Session, sms_id: str) -> SmsMessage | None:
    return session.get(SmsMessage, sms_id)


def get_for_account(session: Session, account_id: str, ref: str) -> SmsMessage | None:
    column = SmsMessage.twilio_sid if ref.startswith(("SM", "MM")) else SmsMessage.id
    return session.scalar(
        select(SmsMessage).where(column == ref, SmsMessage.account_id == account_id)
    )


def claim(session: Session, sms_id: str, attempt: str) -> bool:
    now = utcnow()
    result: CursorResult = session.execute(  # type: ignore[assignment]
        update(SmsMessage)
        .where(
            SmsMessage.id == sms_id,
            SmsMessage.status == st.QUEUED,
            # A blocked account's messages wait, like its calls.
            SmsMessage.account_id.not_in(disputes.blocked_accounts()),
        )
        .values(status=st.SENDING, attempt=attempt, send_started_at=now, updated_at=now)
    )
    return result.rowcount == 1


def update_attempt(session: Session, sms_id: str, claimed: str, **values: object) -> bool:
    result: CursorResult = session.execute(  # type: ignore[assignment]
        update(SmsMessage)
        .where(
            SmsMessage.id == sms_id,
            SmsMessage.attempt == claimed,
            SmsMessage.status == st.SENDING,
            SmsMessage.twilio_sid.is_(None),
        )
        .values(updated_at=utcnow(), **values)
    )
    return result.rowcount == 1


def advance(session: Session, sms_id: str, new_status: str, **values: object) -> bool:
    """Move the SMS on to `new_status` only if the status it has now comes before it: one
    conditional UPDATE, which PostgreSQL checks again on the row a concurrent writer left."""
    result: CursorResult = session.execute(  # type: ignore[assignment]
        update(SmsMessage)
        .where(SmsMessage.id == sms_id, SmsMessage.status.in_(st.before(new_status)))
        .values(status=new_status, updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def sid_for_callback(session: Session, sms_id: str, sid: str) -> str | None:
    """The SMS's SID once a callback naming `sid` is applied: `sid` if it had none yet, else
    the one it had, in one statement (see `calls.repository.sid_for_callback`)."""
    return session.scalar(
        update(SmsMessage)
        .where(SmsMessage.id == sms_id)
        .values(twilio_sid=func.coalesce(SmsMessage.twilio_sid, sid))
        .returning(SmsMessage.twilio_sid)
        .execution_options(synchronize_session=False)
    )


def owed_ids(session: Session, stale_before: datetime, limit: int) -> list[str]:
    return list(
        session.scalars(
            select(SmsMessage.id)
            .where(
                SmsMessage.status == st.QUEUED,
                or_(SmsMessage.handed_at.is_(None), SmsMessage.handed_at < stale_before),
                SmsMessage.account_id.not_in(disputes.blocked_accounts()),
            )
            .limit(limit)
        )
    )


def mark_handed(session: Session, sms_ids: list[str]) -> None:
    session.execute(
        update(SmsMessage)
        .where(SmsMessage.id.in_(sms_ids), SmsMessage.status == st.QUEUED)
        .values(handed_at=utcnow())
    )


def stuck_sending_ids(session: Session, started_before: datetime) -> list[str]:
    return list(
        session.scalars(
            select(SmsMessage.id).where(
                SmsMessage.status == st.SENDING,
                SmsMessage.twilio_sid.is_(None),
                SmsMessage.send_started_at < started_before,
            )
        )
    )


def known_sids(session: Session, sids: list[str]) -> set[str]:
    if not sids:
        return set()
    return set(
        session.scalars(select(SmsMessage.twilio_sid).where(SmsMessage.twilio_sid.in_(sids)))
    )
