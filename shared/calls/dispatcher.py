"""The database knows what is owed; the broker only carries wake-ups.

`hand_out` claims queued calls for workers just in time: a window of two and a half seconds of
the dial rate, shared between the accounts with calls owed (batches and single calls alike) in
turn, the account served longest ago first and, within an account, its batch or its single
calls served longest ago first. So every account has its turn within a few windows however many
there are, and one huge batch does not starve the rest. Each account's share is claimed in a
transaction of its own (its lines and credits checked once, its reservations written together):
one account's failure leaves the others' claims, and an account's row is locked only while its
own share is claimed. Each call goes to a dial task that only has to take its claim. A lost
message (a killed worker, a broker restart) only delays a call: after DISPATCH_STALE_SECONDS its
task is sent again. `sweep` reconciles calls a worker took but never got a SID for, and live
calls whose final callback never came.
"""

import itertools
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from shared import dispatch
from shared.batches import lifecycle as batches_lifecycle
from shared.calls import jobs, repository
from shared.calls import service as calls_service
from shared.config import get_settings
from shared.models import utcnow

log = logging.getLogger(__name__)

# A unit of work: a session that commits when the block ends, and rolls back when it raises.
Transaction = Callable[[], AbstractContextManager[Session]]

# How long an account's claim waits for a lock another transaction holds (its account's row
# mostly): past it, the account is skipped this tick and keeps its turn, and the others are
# served; a settlement or a purchase holds the row for milliseconds.
LOCK_TIMEOUT_SECONDS = 1.0


def window() -> int:
    settings = get_settings()
    return dispatch.window(settings.DIAL_RATE_PER_SECOND, settings.DIAL_BURST)


def hand_out(transaction: Transaction) -> int:
    """One tick: what is owed is read in one transaction, then each account's share is claimed
    and sent in one of its own. Returns how many calls were claimed."""
    stale_before = dispatch.stale_before()
    with transaction() as session:
        dispatch.hold_window(session, "calls")
        calls_service.resend_untaken(session, stale_before)
        calls_service.open_hours(session)
        free = window() - repository.count_unsent(session, stale_before)
        groups = repository.owed_groups(session, stale_before) if free > 0 else []
    accounts: dict[str, list[str | None]] = {}
    for account_id, batch_id in groups:
        accounts.setdefault(account_id, []).append(batch_id)

    def serve_account(account_id: str, take: int) -> int:
        try:
            with transaction() as session:
                return serve(session, stale_before, account_id, accounts[account_id], take)
        except Exception:
            log.exception("account %s: its calls could not be claimed this tick", account_id)
            return 0

    return dispatch.deal(free, list(accounts), serve_account)


def serve(
    session: Session,
    stale_before: datetime,
    account_id: str,
    batch_ids: list[str | None],
    take: int,
) -> int:
    """Claim up to `take` of the account's owed calls, dealt between its groups in their turn,
    and send each to a worker. Returns how many were claimed."""
    session.execute(
        text("SELECT set_config('lock_timeout', :timeout, true)"),
        {"timeout": f"{int(LOCK_TIMEOUT_SECONDS * 1000)}ms"},
    )
    # Counted again under the window's lock: what the tick read at its start may have been
    # claimed since by another tick at the same moment.
    dispatch.hold_window(session, "calls")
    take = min(take, window() - repository.count_unsent(session, stale_before))
    if take <= 0:
        return 0
    owed = [
        repository.owed_ids(session, stale_before, account_id, batch_id, take)
        for batch_id in batch_ids[:take]
    ]
    dealt = [call_id for turn in itertools.zip_longest(*owed) for call_id in turn if call_id]
    plans = calls_service.claim(session, account_id, dealt[:take]) if dealt else []
    for plan in plans:
        jobs.dial(session, plan.call_id, asdict(plan))
    batches = sorted({plan.batch_id for plan in plans if plan.batch_id is not None})
    if batches:
        batches_lifecycle.start_many(session, batches)
    repository.note_served(session, account_id, {plan.batch_id for plan in plans})
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
    followed = batches_lifecycle.sweep(session)
    return len(stuck) + len(overdue) + followed


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
