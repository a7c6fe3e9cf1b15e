"""Call tasks: dial once, reconcile the ambiguous, hang up (and again, what was not carried
out), and hand out what is owed."""

import logging
import time
from dataclasses import asdict
from datetime import timedelta
from typing import Any

from celery import Task

from shared import dispatch as dispatching
from shared.batches import stops as batch_stops
from shared.calls import dispatcher, jobs
from shared.calls import service as calls_service
from shared.config import get_settings
from shared.db import session_scope
from shared.models import utcnow
from shared.queue import get_celery
from shared.ratelimit import carrier as carrier_limits
from shared.telephony import client as twilio
from workers.tasks.retry import HANG_UP_RETRY, TWILIO_RETRY, backoff_seconds

log = logging.getLogger(__name__)
app = get_celery()

# The fence's transaction runs this long before the slot, not in it: its round trips to the
# database, slowed on a busy host, made requests reach the carrier late, bunched with those
# sent on time (more than rate + burst in a second). A hang-up or pause committed in between is
# met as one committed while the request is on its way; the request's deadline still runs from
# the fence (`ends_by`).
FENCE_LEAD_SECONDS = 0.25


@app.task(name=jobs.DIAL, bind=True, max_retries=None)
def dial(self: Task, call_id: str, claimed: dict[str, Any] | None = None) -> str:
    settings = get_settings()
    # Of a dispatched task's plan only the claim's attempt is read: the rest comes from the
    # database (see calls_service.take).
    with session_scope() as session:
        plan = calls_service.take(session, call_id, claimed["attempt"] if claimed else None)
    if plan is None:
        return "not taken: taken by another worker, over, paused, or waiting for credits"
    if batch_stops.is_stopped(plan.batch_id):
        return _stand_down(plan)  # without taking a slot another call could use
    # The slot right before the request, so the carrier sees the pace the bucket gives.
    slot = carrier_limits.dial_bucket().reserve(settings.RATE_MAX_WAIT_SECONDS)
    if not slot.allowed:
        # Too far off: the call keeps its claim, and this task comes back for it nearer its
        # turn. Released, it was claimed again by the retry, a reservation and a release in
        # the account's ledger for every wait.
        with session_scope() as session:
            kept = calls_service.untake(session, plan)
        if not kept:
            return "not placed: its claim was reconciled, or ended, meanwhile"
        raise self.retry(
            args=[call_id, asdict(plan)],
            countdown=slot.wait_seconds - settings.RATE_MAX_WAIT_SECONDS / 2,
        )
    due = time.monotonic() + slot.wait_seconds
    if not batch_stops.wait_unless_stopped(
        plan.batch_id, max(0.0, slot.wait_seconds - FENCE_LEAD_SECONDS)
    ):
        return _stand_down(plan)
    with session_scope() as session:
        ends_by = calls_service.fence(session, plan)
        # Not sent: the claim is settled as the reason says, and maybe dialed anew.
        again = calls_service.fenced_off(session, plan) if ends_by is None else None
    if ends_by is None:
        if again is calls_service.Again.NOW:
            raise self.retry(args=[call_id], countdown=backoff_seconds(self.request.retries))
        if again is calls_service.Again.LATER:
            # Another request to the number is out: its SID comes back within a second or so,
            # or reconcile settles it DIAL_AMBIGUOUS_SECONDS after its claim was taken.
            raise self.retry(
                args=[call_id, asdict(plan)],
                countdown=1
                + backoff_seconds(self.request.retries, cap=settings.DIAL_AMBIGUOUS_SECONDS),
            )
        return (
            "not placed: hung up, its batch stopped, its account blocked, its caller ID removed,"
            " its number on a do-not-contact list, or its claim reconciled or ended"
        )
    time.sleep(max(0.0, due - time.monotonic()))
    dialed_at = utcnow()
    try:
        remote = twilio.create_call(
            to=plan.to,
            from_=plan.from_,
            url=calls_service.voice_url(plan.call_id),
            status_callback=calls_service.status_callback_url(plan.call_id),
            timeout=settings.CALL_RING_TIMEOUT_SECONDS,
            time_limit=plan.time_limit_seconds,
            ends_by=ends_by,
        )
    except twilio.TwilioRejected as exc:
        with session_scope() as session:
            calls_service.fail(session, plan, exc.code, exc.message)
        return f"failed: {exc}"
    except twilio.TwilioUnavailable as exc:
        if exc.maybe_sent:
            # Twilio may have placed the call: ask it before dialing again.
            app.send_task(
                jobs.RECONCILE, args=[call_id], countdown=settings.DIAL_AMBIGUOUS_SECONDS + 1
            )
            return f"ambiguous, reconciling: {exc}"
        with session_scope() as session:
            calls_service.release(session, plan)
        raise self.retry(
            args=[call_id], countdown=backoff_seconds(self.request.retries), exc=exc
        ) from exc
    with session_scope() as session:
        calls_service.record_sid(session, plan, remote.sid, dialed_at)
    return remote.sid


def _stand_down(plan: calls_service.DialPlan) -> str:
    """Its batch was paused or canceled: back to the queue, or canceled with the batch."""
    with session_scope() as session:
        calls_service.stand_down(session, plan)
    return "not placed: its batch was paused or canceled"


@app.task(name=jobs.RECONCILE, **TWILIO_RETRY)
def reconcile(call_id: str) -> str:
    with session_scope() as session:
        return calls_service.reconcile(session, call_id)


@app.task(name=jobs.RECONCILE_LIVE, **TWILIO_RETRY)
def reconcile_live(call_id: str) -> str:
    with session_scope() as session:
        return calls_service.reconcile_live(session, call_id)


@app.task(name=jobs.HANG_UP, **HANG_UP_RETRY)
def hang_up(call_id: str) -> str:
    with session_scope() as session:
        return calls_service.hang_up_at_carrier(session, call_id)


@app.task(name=jobs.SWEEP_HANG_UPS, acks_late=False)
def sweep_hang_ups() -> int:
    handed_before = utcnow() - timedelta(seconds=get_settings().HANGUP_RESEND_SECONDS)
    with session_scope() as session:
        return calls_service.resend_hang_ups(session, handed_before)


@app.task(name=jobs.DISPATCH, acks_late=False)
def dispatch() -> int:
    with dispatching.one_at_a_time("calls") as alone:
        if not alone:
            return 0
        return dispatcher.hand_out(session_scope)


@app.task(name=jobs.SETTLE, acks_late=False)
def settle() -> int:
    # Beat sends one a second, and on a busy worker one can take longer: the next waits for the
    # next second rather than take a worker thread and the same calls.
    with dispatching.one_at_a_time("settle") as alone:
        if not alone:
            return 0
        with session_scope() as session:
            accounts = calls_service.accounts_to_settle(session)
        settled = 0
        for account_id in accounts:  # one short transaction per account's balance
            with session_scope() as session:
                settled += calls_service.settle_ended(session, account_id)
        return settled


@app.task(name=jobs.SWEEP, acks_late=False)
def sweep() -> int:
    with session_scope() as session:
        return dispatcher.sweep(session)
