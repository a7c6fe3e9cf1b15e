"""The database knows what is owed; the broker only carries wake-ups.

`hand_out` claims queued calls for workers just in time: a window of two and a half seconds of
the dial rate, shared round-robin between every (account, batch) with calls owed so one huge
batch does not starve the rest. Each account's share is claimed in one transaction (its lines
and credits checked once, its reservations written together), and each call goes to a dial task
that only has to take its claim. A lost message (a killed worker, a broker restart) only delays
a call: after DISPATCH_STALE_SECONDS its task is sent again. `sweep` reconciles calls a worker
took but never got a SID for, and live calls whose final callback never came.
"""

import math
from dataclasses import asdict
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from shared import dispatch
from shared.batches import repository as batches_repository
from shared.calls import jobs, repository
from shared.calls import service as calls_service
from shared.config import get_settings
from shared.models import utcnow


def window() -> int:
    settings = get_settings()
    return dispatch.window(settings.DIAL_RATE_PER_SECOND, settings.DIAL_BURST)


def hand_out(session: Session) -> int:
    stale_before = dispatch.stale_before()
    calls_service.resend_untaken(session, stale_before)
    free = window() - repository.count_unsent(session, stale_before)
    groups = repository.owed_groups(session, stale_before) if free > 0 else []
    plans: list[calls_service.DialPlan] = []
    # Two rounds: an equal share each, then what the smaller groups left to the others.
    for _ in range(2):
        share = max(1, math.ceil(free / max(1, len(groups))))
        for account_id, batch_id in groups:
            take = min(share, free)
            if take <= 0:
                continue
            call_ids = repository.owed_ids(session, stale_before, account_id, batch_id, take)
            if not call_ids:
                continue
            claimed = calls_service.claim(session, account_id, call_ids)
            plans += claimed
            free -= len(claimed)
    for plan in plans:
        jobs.dial(session, plan.call_id, asdict(plan))
    batches = {plan.batch_id for plan in plans if plan.batch_id is not None}
    if batches:
        batches_repository.mark_running(session, sorted(batches))
    return len(plans)


def sweep(session: Session) -> int:
    settings = get_settings()
    now = utcnow()
    stuck = repository.stuck_dialing_ids(
        session, now - timedelta(seconds=settings.DIAL_AMBIGUOUS_SECONDS)
    )
    for call_id in stuck:
        jobs.reconcile(session, call_id)
    overdue = overdue_live(session, now)
    for call_id in overdue:
        jobs.reconcile_live(session, call_id)
    return len(stuck) + len(overdue)


def overdue_live(session: Session, now: datetime) -> list[str]:
    """Live calls past their time limit after ringing, and a minute more: lost final news."""
    settings = get_settings()
    overdue = []
    for call_id in repository.live_past(
        session, now - timedelta(seconds=settings.CALL_RING_TIMEOUT_SECONDS + 60)
    ):
        call = repository.get(session, call_id)
        assert call is not None and call.dial_started_at is not None
        limit = settings.CALL_RING_TIMEOUT_SECONDS + call.max_call_minutes * 60 + 60
        if now - call.dial_started_at > timedelta(seconds=limit):
            overdue.append(call_id)
    return overdue
