from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Select,
    and_,
    case,
    exists,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, aliased

from shared.batches import status as bst
from shared.billing import disputes
from shared.calls import lifecycle
from shared.calls import status as st
from shared.models import Batch, Call, CallEvent, Campaign, DispatchTurn, new_id, utcnow

# Batches whose calls must not start.
STOPPED_BATCHES = bst.STOPPED


def _batch_may_dial() -> ColumnElement[bool]:
    stopped = select(Batch.id).where(Batch.status.in_(STOPPED_BATCHES))
    return or_(Call.batch_id.is_(None), Call.batch_id.not_in(stopped))


def _account_may_dial() -> ColumnElement[bool]:
    # A disputed account's calls are not owed until its block is lifted (claim checks it too,
    # under the account's lock, and the fence once more, for a claim out when the block came).
    return Call.account_id.not_in(disputes.blocked_accounts())


def get(session: Session, call_id: str) -> Call | None:
    return session.get(Call, call_id)


def get_for_account(session: Session, account_id: str, ref: str) -> Call | None:
    """By the product's call id or by Twilio's call SID, only within the account."""
    column = Call.twilio_sid if ref.startswith("CA") else Call.id
    return session.scalar(select(Call).where(column == ref, Call.account_id == account_id))


def list_page(
    session: Session,
    account_id: str,
    *,
    campaign_id: str | None,
    status: str | None,
    batch_id: str | None,
    limit: int,
    offset: int,
) -> tuple[list[Call], int]:
    query = select(Call).where(Call.account_id == account_id)
    if campaign_id is not None:
        query = query.where(Call.campaign_id == campaign_id)
    if status is not None:
        query = query.where(Call.status == status)
    if batch_id is not None:
        query = query.where(Call.batch_id == batch_id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(Call.created_at.desc(), Call.id).limit(limit).offset(offset)
    )
    return list(rows), total


def has_event(session: Session, call_id: str, source: str, sequence_number: int) -> bool:
    return (
        session.scalar(
            select(CallEvent.id).where(
                CallEvent.call_id == call_id,
                CallEvent.source == source,
                CallEvent.sequence_number == sequence_number,
            )
        )
        is not None
    )


def note_event(
    session: Session, call_id: str, sequence_number: int, answered_at: datetime | None
) -> None:
    """What an event tells whether or not it moves the status: the highest SequenceNumber seen,
    and when the call was answered (an in-progress that comes after completed still says it).
    Written as expressions of the row, so two callbacks at once both count."""
    values: dict[str, object] = {
        "last_sequence": func.greatest(Call.last_sequence, sequence_number)
    }
    if answered_at is not None:
        values["answered_at"] = func.coalesce(Call.answered_at, answered_at)
    session.execute(
        update(Call)
        .where(Call.id == call_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


class Claimable(NamedTuple):
    """A queued call as the claim sees it: where to dial, its time limit, and its campaign's
    lines."""

    id: str
    to_number: str
    from_number: str
    batch_id: str | None
    campaign_id: str
    max_call_minutes: int
    campaign_lines: int | None
    timezone: str | None
    start_at: datetime | None
    not_after: datetime | None
    calling_hours: dict[str, Any] | None
    default_timezone: str | None


# What decides when a call may be placed: its own times and zone, its campaign's hours.
_TIMED = (
    Call.timezone,
    Call.start_at,
    Call.not_after,
    Campaign.calling_hours,
    Campaign.default_timezone,
)

_CLAIMABLE = (
    Call.id,
    Call.to_number,
    Call.from_number,
    Call.batch_id,
    Call.campaign_id,
    Call.max_call_minutes,
    Campaign.max_concurrent_calls,
    *_TIMED,
)


class Timed(NamedTuple):
    id: str
    to_number: str
    campaign_id: str
    timezone: str | None
    start_at: datetime | None
    not_after: datetime | None
    calling_hours: dict[str, Any] | None
    default_timezone: str | None


def timed(session: Session, call_id: str) -> Timed | None:
    row = session.execute(
        select(Call.id, Call.to_number, Call.campaign_id, *_TIMED)
        .join(Campaign, Campaign.id == Call.campaign_id)
        .where(Call.id == call_id)
    ).one_or_none()
    return None if row is None else Timed(*row)


# The statuses a call waits in before a worker holds it, and so may pass its notAfter in.
WAITING = (st.QUEUED, st.SCHEDULED, st.INSUFFICIENT_CREDITS)


def attempts_to(
    session: Session, account_id: str, numbers: Sequence[str], since: datetime
) -> dict[str, list[tuple[str, datetime]]]:
    """The account's calls to these numbers that went to Twilio since `since`, and those claimed
    and not yet sent (as attempts now): (campaign, when) by number, for the caps on calls to
    one number. Two lookups, each on an index: placed calls by ix_calls_placed_to, claims by
    the account's calls in `dialing`."""
    found: dict[str, list[tuple[str, datetime]]] = {}
    placed = session.execute(
        select(Call.to_number, Call.campaign_id, Call.dialed_at).where(
            Call.account_id == account_id,
            Call.to_number.in_(numbers),
            Call.dialed_at.is_not(None),
            Call.dialed_at > since,
        )
    )
    claimed = session.execute(
        select(Call.to_number, Call.campaign_id, func.coalesce(Call.handed_at, utcnow())).where(
            Call.account_id == account_id,
            Call.status == st.DIALING,
            Call.dialed_at.is_(None),
            Call.to_number.in_(numbers),
        )
    )
    for number, campaign_id, at in [*placed, *claimed]:
        found.setdefault(number, []).append((campaign_id, at))
    return found


def past_not_after(session: Session, now: datetime, limit: int) -> list[tuple[str, str]]:
    """Calls not placed by their notAfter, with the status each is in (the partial index
    ix_calls_not_after_open holds only those that may)."""
    rows = session.execute(
        select(Call.id, Call.status)
        .where(Call.not_after.is_not(None), Call.status.in_(WAITING), Call.not_after <= now)
        .order_by(Call.not_after)
        .limit(limit)
    )
    return [(call_id, status) for call_id, status in rows]


def due_scheduled(session: Session, now: datetime, limit: int) -> list[Timed]:
    """Scheduled calls whose moment has come, earliest first (ix_calls_scheduled_not_before)."""
    rows = session.execute(
        select(Call.id, Call.to_number, Call.campaign_id, *_TIMED)
        .join(Campaign, Campaign.id == Call.campaign_id)
        .where(Call.status == st.SCHEDULED, Call.not_before <= now)
        .order_by(Call.not_before, Call.id)
        .limit(limit)
    )
    return [Timed(*row) for row in rows]


def queue_scheduled(session: Session, call_ids: Sequence[str]) -> int:
    """Scheduled calls whose hours opened go to the queue, for the dispatcher to claim."""
    queued = lifecycle.move_many(
        session,
        [Call.id.in_(call_ids), Call.status == st.SCHEDULED],
        st.QUEUED,
        not_before=None,
        hold_reason=None,
        hold_rule=None,
        handed_at=None,
    )
    return len(queued)


def locking(*where: ColumnElement[bool]) -> Select[tuple[str]]:
    """The ids of the calls matching `where`, locked in id order, for a statement that changes
    many calls to take its rows by (`Call.id.in_(locking(...))`). Every such statement takes its
    rows in this one order, so two of them over the same calls (the dispatcher's claim and a
    batch's cancel) wait for one another, never in a circle: each walking the rows in the order
    its own scan found them, one locked a call the other wanted next and waited for one the
    other held, and PostgreSQL broke the circle by failing one of them."""
    return select(Call.id).where(*where).order_by(Call.id).with_for_update(key_share=True)


def claimable(session: Session, call_ids: Sequence[str]) -> list[Claimable]:
    """The calls among these that may be claimed now, in the order given."""
    rows = session.execute(
        select(*_CLAIMABLE)
        .join(Campaign, Campaign.id == Call.campaign_id)
        .where(Call.id.in_(call_ids), Call.status == st.QUEUED, _batch_may_dial())
    )
    place = {call_id: index for index, call_id in enumerate(call_ids)}
    return sorted((Claimable(*row) for row in rows), key=lambda call: place[call.id])


def claim(session: Session, reservations: dict[str, int], attempt: str) -> set[str]:
    """Take queued calls for dialing, each holding its reservation in credits; returns those
    taken (a call canceled or paused meanwhile is not)."""
    now = utcnow()
    claimed = lifecycle.move_many(
        session,
        [Call.id.in_(list(reservations)), Call.status == st.QUEUED, _batch_may_dial()],
        st.DIALING,
        attempt=attempt,
        credits_reserved=case(reservations, value=Call.id),
        handed_at=now,
        dial_started_at=None,
        updated_at=now,
    )
    return {call.id for call in claimed}


class Taken(NamedTuple):
    """A claim as its worker takes it: where to dial and for how long (what it was accepted with,
    as its reservation was counted), from the call's row."""

    account_id: str
    to_number: str
    from_number: str
    batch_id: str | None
    max_call_minutes: int
    hangup_requested: bool


def take(session: Session, call_id: str, claimed: str, attempt: str) -> Taken | None:
    """A worker takes a claim no worker has taken yet, under its own attempt: a dial task
    delivered twice finds the claim taken the second time. What to dial, and whether a hang-up
    was asked for meanwhile; None when the claim was not there to take."""
    now = utcnow()
    row = session.execute(
        update(Call)
        .where(
            Call.id == call_id,
            Call.attempt == claimed,
            Call.status == st.DIALING,
            Call.dial_started_at.is_(None),
        )
        .values(attempt=attempt, dial_started_at=now, dialed_at=None, updated_at=now)
        .returning(
            Call.account_id,
            Call.to_number,
            Call.from_number,
            Call.batch_id,
            Call.max_call_minutes,
            Call.hangup_requested,
        )
        .execution_options(synchronize_session=False)
    ).one_or_none()
    return None if row is None else Taken(*row)


def batch_stopped(session: Session, batch_id: str | None) -> bool:
    if batch_id is None:
        return False
    return session.scalar(select(Batch.status).where(Batch.id == batch_id)) in STOPPED_BATCHES


def _awaiting_sid() -> ColumnElement[bool]:
    """A call whose create request went to Twilio (the fence let it through) with no SID back:
    Twilio may hold a call for it that we do not know."""
    return (Call.status == st.DIALING) & Call.twilio_sid.is_(None) & Call.dialed_at.is_not(None)


# Another call to the same pair, in the fence. Made once: an alias built for each fence cost the
# worker about as much CPU as the rest of the fence, all of it between the dial slot and the
# create request, where it held the other threads' requests back past their slots.
_OTHER_CALL = aliased(Call, name="other_call")


def fence(
    session: Session,
    call_id: str,
    claimed: str,
    taken_after: datetime,
    to_number: str,
    from_number: str,
) -> str | None:
    """Right before the create request: the claim is still this attempt's, with no SID, no
    hang-up asked for, its batch neither paused nor canceled, its account not blocked, it was
    taken after `taken_after`, and no other call of ours from `from_number` to `to_number` has a
    create request out with no SID back (see `request_out_to`). An UPDATE, not a read: it waits
    for a reconcile handing the claim back, or a hang-up being asked, and sees what they commit,
    where a read would see the row as it was and dial a call just given to another worker, or
    just hung up. It marks the request as sent (`dialed_at`). The call's account when the
    request may be sent, else None.

    Fences to one pair of numbers take turns under a transaction-level advisory lock, held
    until the request is marked sent and committed: two at once would each see the other's
    request not yet marked and both send."""
    session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
        {"key": f"toingg:dial:{from_number}:{to_number}"},
    )
    now = utcnow()
    other = _OTHER_CALL
    return session.scalar(
        update(Call)
        .where(
            Call.id == call_id,
            Call.attempt == claimed,
            Call.status == st.DIALING,
            Call.twilio_sid.is_(None),
            Call.hangup_requested.is_(False),
            Call.dial_started_at > taken_after,
            _batch_may_dial(),
            _account_may_dial(),
            ~exists().where(
                other.to_number == to_number,
                other.from_number == from_number,
                other.id != call_id,
                other.status == st.DIALING,
                other.twilio_sid.is_(None),
                other.dialed_at.is_not(None),
            ),
        )
        .values(dialed_at=now, updated_at=now)
        .returning(Call.account_id)
        .execution_options(synchronize_session=False)
    )


def request_out_to(session: Session, call_id: str, to_number: str, from_number: str) -> bool:
    """Whether another call of ours from `from_number` to `to_number` has its create request
    out with no SID back. Twilio tells its calls apart from ours only by To and From (its Call
    resource does not give back the URLs a call was created with), so while such a request is
    unresolved a second one to the same pair would leave reconcile two candidates for each
    call Twilio has, and no way to tell whose is whose."""
    return bool(
        session.scalar(
            select(
                exists().where(
                    Call.to_number == to_number,
                    Call.from_number == from_number,
                    Call.id != call_id,
                    _awaiting_sid(),
                )
            )
        )
    )


def untaken(session: Session, handed_before: datetime) -> list[tuple[str, Claimable]]:
    """Claims whose dial task no worker took long after it was sent (a lost message), with
    their attempt."""
    rows = session.execute(
        select(Call.attempt, *_CLAIMABLE)
        .join(Campaign, Campaign.id == Call.campaign_id)
        .where(
            Call.status == st.DIALING,
            Call.dial_started_at.is_(None),
            Call.handed_at < handed_before,
        )
    )
    return [(attempt, Claimable(*rest)) for attempt, *rest in rows]


def park_for_credits(session: Session, account_id: str, campaign_ids: Sequence[str]) -> None:
    """The account's queued calls of these campaigns wait for credits (requeued as credits
    arrive)."""
    lifecycle.move_many(
        session,
        [
            Call.account_id == account_id,
            Call.campaign_id.in_(campaign_ids),
            Call.status == st.QUEUED,
            _batch_may_dial(),
        ],
        st.INSUFFICIENT_CREDITS,
        handed_at=None,
    )


def move_attempt(
    session: Session, call_id: str, claimed: str, new_status: str, **values: object
) -> bool:
    """Move a claimed call on only if the claim is still this attempt's."""
    moved = lifecycle.move(
        session,
        call_id,
        new_status,
        Call.attempt == claimed,
        Call.status == st.DIALING,
        **values,
    )
    return moved is not None


class StoredSid(NamedTuple):
    """The call once a SID arrived for it: the SID it holds (the first that arrived), whether a
    hang-up was asked for, and whether Twilio was told so already."""

    sid: str
    hangup_requested: bool
    hangup_carried_out: bool


def store_sid(
    session: Session,
    call_id: str,
    sid: str,
    *,
    dialed_at: datetime | None = None,
    claimed: str | None = None,
) -> StoredSid | None:
    """Keep a SID Twilio gave for the call, where it has none yet: of two SIDs arriving at once
    (two calls at Twilio for one of ours) the second sees the first's rather than replacing it.
    When the call is still in `dialing` under `claimed` (the worker's or reconcile's attempt) it
    moves on to `initiated` in the same statement; otherwise a status callback moves it. Raises
    IntegrityError when another call holds the SID. None when there is no such call."""
    values: dict[str, object] = {"twilio_sid": func.coalesce(Call.twilio_sid, sid)}
    if dialed_at is not None:
        values["dialed_at"] = func.coalesce(Call.dialed_at, dialed_at)
    if claimed is not None:
        call = lifecycle.move(
            session,
            call_id,
            st.INITIATED,
            Call.attempt == claimed,
            Call.status == st.DIALING,
            **values,
        )
        if call is not None:
            assert call.twilio_sid is not None
            return StoredSid(
                call.twilio_sid, call.hangup_requested, call.hangup_sent_at is not None
            )
    row = session.execute(
        update(Call)
        .where(Call.id == call_id)
        .values(updated_at=utcnow(), **values)
        .returning(Call.twilio_sid, Call.hangup_requested, Call.hangup_sent_at.is_not(None))
        .execution_options(synchronize_session=False)
    ).one_or_none()
    return None if row is None else StoredSid(*row)


def ask_hang_up(session: Session, call_id: str) -> bool | None:
    """Ask for the call's hang-up, and tell whether Twilio has it (a SID is stored), in one
    statement. It waits for a worker storing the SID at this moment and then sees the SID, or
    the worker's write waits for it and sees the flag: read first and flagged after, a SID
    stored in between by a worker that saw no flag left nobody to hang up. None when the call
    is over."""
    now = utcnow()
    return session.scalar(
        update(Call)
        .where(Call.id == call_id, Call.status.not_in(st.FINAL))
        .values(hangup_requested=True, hangup_handed_at=now, updated_at=now)
        .returning(Call.twilio_sid.is_not(None))
        .execution_options(synchronize_session=False)
    )


def mark_hang_up_handed(session: Session, call_id: str) -> None:
    session.execute(
        update(Call)
        .where(Call.id == call_id)
        .values(hangup_handed_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def hand_out_owed_hang_ups(session: Session, handed_before: datetime) -> list[str]:
    """Live calls whose hang-up was asked for, not carried out, and last handed to a worker
    before `handed_before`: marked handed now, in one statement, so two sweepers at once hand
    each out once (the second's update finds the first's new time)."""
    now = utcnow()
    return list(
        session.scalars(
            update(Call)
            .where(
                Call.id.in_(
                    locking(
                        Call.hangup_requested.is_(True),
                        Call.hangup_sent_at.is_(None),
                        Call.status.in_(st.LIVE),
                        Call.twilio_sid.is_not(None),
                        or_(Call.hangup_handed_at.is_(None), Call.hangup_handed_at < handed_before),
                    )
                )
            )
            .values(hangup_handed_at=now, updated_at=now)
            .returning(Call.id)
            .execution_options(synchronize_session=False)
        )
    )


def record_hang_up(session: Session, call_id: str, sent: int, over: bool) -> None:
    """Count the hang-up requests sent to Twilio; `over`: Twilio says the call has ended, and
    the hang-up is carried out."""
    values: dict[str, object] = {"hangups_sent": Call.hangups_sent + sent}
    if over:
        values["hangup_sent_at"] = func.coalesce(Call.hangup_sent_at, utcnow())
    session.execute(
        update(Call)
        .where(Call.id == call_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


def cancel_if_queued(session: Session, call_id: str) -> bool:
    """Cancel a call Twilio never had: queued, waiting for credits, or for its hours."""
    canceled = lifecycle.move(
        session,
        call_id,
        st.CANCELED,
        Call.status.in_(WAITING),
        ended_at=utcnow(),
    )
    return canceled is not None


def known_sids(session: Session, sids: Sequence[str]) -> set[str]:
    if not sids:
        return set()
    return set(session.scalars(select(Call.twilio_sid).where(Call.twilio_sid.in_(sids))))


def count_awaiting_sid(session: Session, to_number: str, from_number: str) -> int:
    """Our calls from `from_number` to `to_number`, on every account, whose create request
    went out and got no SID back: each may be any call Twilio has between those numbers that we
    do not know. The fence lets one such request out at a time for a pair of numbers, so this is
    one at most for requests it let through."""
    return (
        session.scalar(
            select(func.count())
            .select_from(Call)
            .where(Call.to_number == to_number, Call.from_number == from_number, _awaiting_sid())
        )
        or 0
    )


def _owed(stale_before: datetime) -> ColumnElement[bool]:
    """Queued calls no worker holds: never handed out, or handed so long ago the task is lost."""
    return (
        (Call.status == st.QUEUED)
        & or_(Call.handed_at.is_(None), Call.handed_at < stale_before)
        & _batch_may_dial()
        & _account_may_dial()
    )


def owed_groups(session: Session, stale_before: datetime) -> list[tuple[str, str | None]]:
    """(account, batch) pairs with calls owed, single calls forming their account's None group,
    in the order they take their turn: the account served longest ago first (one never served
    before any), and within an account the group served longest ago first."""
    owed = select(Call.account_id, Call.batch_id).where(_owed(stale_before)).distinct().subquery()
    turns = aliased(DispatchTurn)
    account_served = (
        select(func.max(turns.served_at))
        .where(turns.account_id == owed.c.account_id)
        .scalar_subquery()
    )
    rows = session.execute(
        select(owed.c.account_id, owed.c.batch_id)
        .outerjoin(
            DispatchTurn,
            and_(
                DispatchTurn.account_id == owed.c.account_id,
                DispatchTurn.batch_id.is_not_distinct_from(owed.c.batch_id),
            ),
        )
        .order_by(
            account_served.asc().nulls_first(),
            owed.c.account_id,
            DispatchTurn.served_at.asc().nulls_first(),
            owed.c.batch_id.asc().nulls_first(),
        )
    )
    return [(account_id, batch_id) for account_id, batch_id in rows]


def note_served(session: Session, account_id: str, batch_ids: set[str | None]) -> None:
    """The account's groups whose calls were just claimed had their turn: now."""
    if not batch_ids:
        return
    now = utcnow()
    statement = insert(DispatchTurn).values(
        [
            {"id": new_id(), "account_id": account_id, "batch_id": batch_id, "served_at": now}
            for batch_id in batch_ids
        ]
    )
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[DispatchTurn.account_id, DispatchTurn.batch_id],
            set_={"served_at": statement.excluded.served_at},
        )
    )


def owed_ids(
    session: Session, stale_before: datetime, account_id: str, batch_id: str | None, limit: int
) -> list[str]:
    batch = Call.batch_id.is_(None) if batch_id is None else Call.batch_id == batch_id
    return list(
        session.scalars(
            select(Call.id)
            .where(_owed(stale_before), Call.account_id == account_id, batch)
            .order_by(Call.created_at, Call.id)
            .limit(limit)
        )
    )


def count_unsent(session: Session, handed_since: datetime) -> int:
    """Calls claimed and handed to a worker whose create request has not returned yet."""
    return (
        session.scalar(
            select(func.count())
            .select_from(Call)
            .where(
                Call.status == st.DIALING,
                Call.twilio_sid.is_(None),
                Call.handed_at >= handed_since,
            )
        )
        or 0
    )


HOLDING_A_LINE = (st.DIALING, *st.LIVE)


def count_live(session: Session, *, account_id: str, campaign_id: str | None = None) -> int:
    """Calls holding a line: from hand-over to their final status."""
    query = (
        select(func.count())
        .select_from(Call)
        .where(Call.account_id == account_id, Call.status.in_(HOLDING_A_LINE))
    )
    if campaign_id is not None:
        query = query.where(Call.campaign_id == campaign_id)
    return session.scalar(query) or 0


def live_past(session: Session, started_before: datetime) -> list[str]:
    """Live calls older than any time limit allows: their final callback never came."""
    return list(
        session.scalars(
            select(Call.id).where(
                Call.status.in_(st.LIVE),
                Call.twilio_sid.is_not(None),
                Call.dial_started_at < started_before,
            )
        )
    )


def untake(session: Session, call_id: str, attempt: str) -> bool:
    """A taken claim, not sent to Twilio, is left for its task to take again later: it keeps its
    claim (its line and its reservation). Only while the claim is still this attempt's."""
    now = utcnow()
    result: CursorResult = session.execute(  # type: ignore[assignment]
        update(Call)
        .where(
            Call.id == call_id,
            Call.attempt == attempt,
            Call.status == st.DIALING,
            Call.twilio_sid.is_(None),
        )
        .values(dial_started_at=None, handed_at=now, updated_at=now)
    )
    return result.rowcount == 1


def owe(session: Session, call_id: str) -> None:
    """A queued call a worker could not claim goes back to the dispatcher."""
    session.execute(
        update(Call).where(Call.id == call_id, Call.status == st.QUEUED).values(handed_at=None)
    )


def mark_handed(session: Session, call_ids: Sequence[str]) -> None:
    session.execute(
        update(Call).where(Call.id.in_(locking(Call.id.in_(call_ids)))).values(handed_at=utcnow())
    )


def stuck_dialing_ids(session: Session, started_before: datetime) -> list[str]:
    """Calls a worker took with no SID long after: the worker died or Twilio never answered."""
    return list(
        session.scalars(
            select(Call.id).where(
                Call.status == st.DIALING,
                Call.twilio_sid.is_(None),
                Call.dial_started_at < started_before,
            )
        )
    )


def waiting_for_credits(session: Session, account_id: str, limit: int) -> list[tuple[str, int]]:
    """The account's calls waiting for credits, oldest first, with their longest length in
    minutes."""
    rows = session.execute(
        select(Call.id, Call.max_call_minutes)
        .where(Call.account_id == account_id, Call.status == st.INSUFFICIENT_CREDITS)
        .order_by(Call.created_at, Call.id)
        .limit(limit)
    )
    return [(call_id, minutes) for call_id, minutes in rows]


def requeue_waiting_for_credits(session: Session, call_ids: Sequence[str]) -> int:
    requeued = lifecycle.move_many(
        session,
        [Call.id.in_(call_ids), Call.status == st.INSUFFICIENT_CREDITS],
        st.QUEUED,
        handed_at=None,
    )
    return len(requeued)


class Unsettled(NamedTuple):
    id: str
    credits_reserved: int
    credits_charged: int


def _unsettled() -> ColumnElement[bool]:
    # credits_reserved > 0 as the partial index ix_calls_holding_credits says it.
    return and_(Call.credits_reserved > 0, Call.status.in_(st.FINAL))


def accounts_with_unsettled(session: Session) -> list[str]:
    """Accounts with ended calls whose reservation is still held."""
    return list(session.scalars(select(Call.account_id).where(_unsettled()).distinct()))


def take_unsettled(session: Session, account_id: str, limit: int) -> list[Unsettled]:
    """The account's ended calls still holding a reservation, each locked for this settlement
    until it commits. A call another settlement holds is skipped (it settles it), and one it
    settled meanwhile no longer matches: no call is settled twice."""
    rows = session.execute(
        select(Call.id, Call.credits_reserved, func.coalesce(Call.credits_charged, 0))
        .where(Call.account_id == account_id, _unsettled())
        .order_by(Call.ended_at, Call.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [Unsettled(*row) for row in rows]


def mark_settled(session: Session, call_ids: Sequence[str]) -> None:
    session.execute(
        update(Call)
        .where(Call.id.in_(locking(Call.id.in_(call_ids))))
        .values(credits_reserved=0, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def mark_opted_out(session: Session, call_id: str) -> bool:
    """The callee pressed the call's opt-out digit: once, whatever Twilio posts again."""
    marked = session.execute(
        update(Call)
        .where(Call.id == call_id, Call.opted_out_at.is_(None))
        .values(opted_out_at=utcnow())
        .returning(Call.id)
    ).first()
    return marked is not None
