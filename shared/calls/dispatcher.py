"""The database knows what is owed; the broker only carries wake-ups.

`hand_out` gives workers the queued calls that no worker holds, just in time: a window of about
two seconds of the dial rate, shared round-robin between every (account, batch) with calls owed
so one huge batch does not starve the rest, and never more than an account's free lines. A lost
message (a killed worker, a broker restart) only delays a call: after DISPATCH_STALE_SECONDS it is
handed out again. `sweep` reconciles calls stuck between claim and SID, and live calls whose final
callback never came.
"""

import math
from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from shared.calls import jobs, repository
from shared.calls import service as calls_service
from shared.config import get_settings
from shared.models import Account, Batch, Campaign, utcnow


def window() -> int:
    settings = get_settings()
    # A second and a half of dialing: beat wakes the dispatcher every second.
    paced = math.ceil(settings.DIAL_RATE_PER_SECOND * 1.5) + settings.DIAL_BURST
    return max(1, min(settings.DISPATCH_WINDOW, paced))


def hand_out(session: Session) -> int:
    stale_before = utcnow() - timedelta(seconds=get_settings().DISPATCH_STALE_SECONDS)
    free = window() - repository.count_in_flight(session, stale_before)
    groups = repository.owed_groups(session, stale_before) if free > 0 else []
    if not groups:
        return 0
    lines: dict[str, int] = {}
    for account_id in {account_id for account_id, _ in groups}:
        account = session.get(Account, account_id)
        assert account is not None
        lines[account_id] = (
            calls_service.line_limit(account)
            - repository.count_live(session, account_id=account_id)
            - repository.count_in_flight(session, stale_before, account_id)
        )
    handed: list[str] = []
    batches: set[str] = set()
    # Two rounds: an equal share each, then what the smaller groups left to the others.
    for _ in range(2):
        share = max(1, math.ceil(free / len(groups)))
        for account_id, batch_id in groups:
            take = min(share, free, lines[account_id])
            if take <= 0:
                continue
            call_ids = repository.owed_ids(session, stale_before, account_id, batch_id, take)
            repository.mark_handed(session, call_ids)
            handed += call_ids
            free -= len(call_ids)
            lines[account_id] -= len(call_ids)
            if call_ids and batch_id is not None:
                batches.add(batch_id)
    for call_id in handed:
        jobs.dial(session, call_id)
    if batches:
        session.execute(
            update(Batch)
            .where(Batch.id.in_(batches), Batch.status == "queued")
            .values(status="running", updated_at=utcnow())
        )
    return len(handed)


def sweep(session: Session) -> int:
    settings = get_settings()
    now = utcnow()
    stuck = repository.stuck_dialing_ids(
        session, now - timedelta(seconds=settings.DIAL_AMBIGUOUS_SECONDS)
    )
    for call_id in stuck:
        jobs.reconcile(session, call_id)
    # A call can live at most its campaign's limit after ringing; a minute more is lost news.
    overdue = []
    for call_id in repository.live_past(
        session, now - timedelta(seconds=settings.CALL_RING_TIMEOUT_SECONDS + 60)
    ):
        call = repository.get(session, call_id)
        assert call is not None and call.dial_started_at is not None
        campaign = session.get(Campaign, call.campaign_id)
        assert campaign is not None
        limit = settings.CALL_RING_TIMEOUT_SECONDS + campaign.max_call_minutes * 60 + 60
        if now - call.dial_started_at > timedelta(seconds=limit):
            overdue.append(call_id)
            jobs.reconcile_live(session, call_id)
    return len(stuck) + len(overdue)
