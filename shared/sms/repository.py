from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import ColumnElement, CursorResult, exists, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, aliased

from shared.billing import disputes
from shared.models import SmsMessage, SmsTurn, utcnow
from shared.sms import lifecycle
from shared.sms import status as st


def get(session: Session, sms_id: str) -> SmsMessage | None:
    return session.get(SmsMessage, sms_id)


def get_for_account(session: Session, account_id: str, ref: str) -> SmsMessage | None:
    column = SmsMessage.twilio_sid if ref.startswith(("SM", "MM")) else SmsMessage.id
    return session.scalar(
        select(SmsMessage).where(column == ref, SmsMessage.account_id == account_id)
    )


def _may_send() -> ColumnElement[bool]:
    # A blocked account's messages wait, like its calls: not claimed, and a claim out with its
    # worker when the block came is not sent (the fence).
    return SmsMessage.account_id.not_in(disputes.blocked_accounts())


def claim(session: Session, sms_ids: Sequence[str], attempt: str) -> list[str]:
    """Claim queued messages for sending under `attempt`, for workers to take; returns those
    claimed (one sent, claimed by another or blocked meanwhile is not)."""
    now = utcnow()
    claimed = lifecycle.move_many(
        session,
        [SmsMessage.id.in_(sms_ids), SmsMessage.status == st.QUEUED, _may_send()],
        st.SENDING,
        attempt=attempt,
        handed_at=now,
        send_started_at=None,
        updated_at=now,
    )
    return [sms.id for sms in claimed]


class Taken(NamedTuple):
    """A claim as its worker takes it: what to send, from the message's row."""

    account_id: str
    to_number: str
    from_number: str
    body: str | None


def take(session: Session, sms_id: str, claimed: str, attempt: str) -> Taken | None:
    """A worker takes a claim no worker has taken yet, under its own attempt: a send task
    delivered twice, or sent again while its first copy waited, finds it taken. None when the
    claim was not there to take (see `calls.repository.take`)."""
    now = utcnow()
    row = session.execute(
        update(SmsMessage)
        .where(
            SmsMessage.id == sms_id,
            SmsMessage.attempt == claimed,
            SmsMessage.status == st.SENDING,
            SmsMessage.send_started_at.is_(None),
        )
        .values(attempt=attempt, send_started_at=now, requested_at=None, updated_at=now)
        .returning(
            SmsMessage.account_id, SmsMessage.to_number, SmsMessage.from_number, SmsMessage.body
        )
        .execution_options(synchronize_session=False)
    ).one_or_none()
    return None if row is None else Taken(*row)


def _awaiting_sid() -> ColumnElement[bool]:
    """A message whose create request went to Twilio (the fence let it through) with no SID
    back: Twilio may hold a message for it that we do not know."""
    return (
        (SmsMessage.status == st.SENDING)
        & SmsMessage.twilio_sid.is_(None)
        & SmsMessage.requested_at.is_not(None)
    )


# Another message to the same pair, in the fence: made once, as `calls.repository` makes its own.
_OTHER_SMS = aliased(SmsMessage, name="other_sms")


def fence(
    session: Session,
    sms_id: str,
    claimed: str,
    taken_after: datetime,
    to_number: str,
    from_number: str,
) -> str | None:
    """Right before the create request: the claim is still this attempt's, with no SID, its
    account not blocked, it was taken after `taken_after`, and no other message of ours from
    `from_number` to `to_number` has a create request out with no SID back (see
    `request_out_to`). An UPDATE, for the reason `calls.repository.fence` gives; it marks the
    request as sent (`requested_at`). The message's account when it may be sent, else None.

    Fences to one pair of numbers take turns under a transaction-level advisory lock, held
    until the request is marked sent and committed, as a call's do."""
    session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
        {"key": f"toingg:sms:{from_number}:{to_number}"},
    )
    now = utcnow()
    other = _OTHER_SMS
    return session.scalar(
        update(SmsMessage)
        .where(
            SmsMessage.id == sms_id,
            SmsMessage.attempt == claimed,
            SmsMessage.status == st.SENDING,
            SmsMessage.twilio_sid.is_(None),
            SmsMessage.send_started_at > taken_after,
            _may_send(),
            ~exists().where(
                other.to_number == to_number,
                other.from_number == from_number,
                other.id != sms_id,
                other.status == st.SENDING,
                other.twilio_sid.is_(None),
                other.requested_at.is_not(None),
            ),
        )
        .values(requested_at=now, updated_at=now)
        .returning(SmsMessage.account_id)
        .execution_options(synchronize_session=False)
    )


def request_out_to(session: Session, sms_id: str, to_number: str, from_number: str) -> bool:
    """Whether another message of ours from `from_number` to `to_number` has its create request
    out with no SID back. Twilio tells its messages apart from ours only by To, From and the
    body, so while such a request is unresolved a second one with the same text would leave
    reconcile two candidates for each message Twilio has (see `calls.repository.request_out_to`;
    the rule holds for the pair whatever the text, as a call's does)."""
    return bool(
        session.scalar(
            select(
                exists().where(
                    SmsMessage.to_number == to_number,
                    SmsMessage.from_number == from_number,
                    SmsMessage.id != sms_id,
                    _awaiting_sid(),
                )
            )
        )
    )


def _unsent(sms_id: str, claimed: str) -> list[ColumnElement[bool]]:
    """The claim is still this attempt's, and Twilio has not taken the message."""
    return [
        SmsMessage.id == sms_id,
        SmsMessage.attempt == claimed,
        SmsMessage.status == st.SENDING,
        SmsMessage.twilio_sid.is_(None),
    ]


def update_attempt(session: Session, sms_id: str, claimed: str, **values: object) -> bool:
    """Change a claimed message (not its status) only while the claim is this attempt's."""
    result: CursorResult = session.execute(  # type: ignore[assignment]
        update(SmsMessage).where(*_unsent(sms_id, claimed)).values(updated_at=utcnow(), **values)
    )
    return result.rowcount == 1


def move_attempt(
    session: Session, sms_id: str, claimed: str, new_status: str, **values: object
) -> bool:
    """Move a claimed message on only while the claim is this attempt's."""
    moved = lifecycle.move(session, sms_id, new_status, *_unsent(sms_id, claimed), **values)
    return moved is not None


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


def _owed(stale_before: datetime) -> ColumnElement[bool]:
    """Queued messages no worker holds: never handed out, or handed back so long ago that the
    task that was to send them again is lost."""
    return (
        (SmsMessage.status == st.QUEUED)
        & or_(SmsMessage.handed_at.is_(None), SmsMessage.handed_at < stale_before)
        & _may_send()
    )


def owed_accounts(session: Session, stale_before: datetime) -> list[str]:
    """The accounts with messages owed, in the order they take their turn: the account served
    longest ago first (one never served before any)."""
    owed = select(SmsMessage.account_id).where(_owed(stale_before)).distinct().subquery()
    return list(
        session.scalars(
            select(owed.c.account_id)
            .outerjoin(SmsTurn, SmsTurn.account_id == owed.c.account_id)
            .order_by(SmsTurn.served_at.asc().nulls_first(), owed.c.account_id)
        )
    )


def owed_ids(session: Session, stale_before: datetime, account_id: str, limit: int) -> list[str]:
    """The account's messages owed, oldest first."""
    return list(
        session.scalars(
            select(SmsMessage.id)
            .where(_owed(stale_before), SmsMessage.account_id == account_id)
            .order_by(SmsMessage.created_at, SmsMessage.id)
            .limit(limit)
        )
    )


def note_served(session: Session, account_ids: Sequence[str]) -> None:
    """These accounts' messages were just claimed: they had their turn, now."""
    if not account_ids:
        return
    now = utcnow()
    statement = insert(SmsTurn).values(
        [{"account_id": account_id, "served_at": now} for account_id in account_ids]
    )
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[SmsTurn.account_id], set_={"served_at": statement.excluded.served_at}
        )
    )


def count_unsent(session: Session, handed_since: datetime) -> int:
    """Messages claimed and handed to a worker whose create request has not returned yet."""
    return (
        session.scalar(
            select(func.count())
            .select_from(SmsMessage)
            .where(
                SmsMessage.status == st.SENDING,
                SmsMessage.twilio_sid.is_(None),
                SmsMessage.handed_at >= handed_since,
            )
        )
        or 0
    )


def hand_out_untaken(session: Session, handed_before: datetime) -> list[tuple[str, str]]:
    """Claims no worker took long after their task was sent (a lost message), as (id, attempt):
    marked handed now, in one statement, so they are sent again once."""
    now = utcnow()
    rows = session.execute(
        update(SmsMessage)
        .where(
            SmsMessage.status == st.SENDING,
            SmsMessage.send_started_at.is_(None),
            SmsMessage.handed_at < handed_before,
        )
        .values(handed_at=now, updated_at=now)
        .returning(SmsMessage.id, SmsMessage.attempt)
        .execution_options(synchronize_session=False)
    )
    return [(sms_id, attempt) for sms_id, attempt in rows]


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


def count_awaiting_sid(session: Session, to_number: str, from_number: str, body: str) -> int:
    """Our messages with this text from `from_number` to `to_number`, on every account, whose
    create request went out and got no SID back: each may be any such message Twilio has that
    we do not know. The fence lets one such request out at a time for a pair of numbers, so
    this is one at most for requests it let through."""
    return (
        session.scalar(
            select(func.count())
            .select_from(SmsMessage)
            .where(
                SmsMessage.to_number == to_number,
                SmsMessage.from_number == from_number,
                SmsMessage.body == body,
                _awaiting_sid(),
            )
        )
        or 0
    )


def known_sids(session: Session, sids: list[str]) -> set[str]:
    if not sids:
        return set()
    return set(
        session.scalars(select(SmsMessage.twilio_sid).where(SmsMessage.twilio_sid.in_(sids)))
    )
