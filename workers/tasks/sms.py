"""SMS tasks: send once, reconcile the ambiguous, and hand out what is owed."""

import time

from celery import Task

from shared import dispatch as dispatching
from shared.config import get_settings
from shared.db import session_scope
from shared.queue import get_celery
from shared.ratelimit import carrier as carrier_limits
from shared.sms import dispatcher, jobs
from shared.sms import service as sms_service
from shared.telephony import client as twilio
from workers.tasks.retry import TWILIO_RETRY, backoff_seconds

app = get_celery()


@app.task(name=jobs.SEND, bind=True, max_retries=None)
def send(self: Task, sms_id: str, claimed: str | None = None) -> str:
    settings = get_settings()
    # Of a dispatched task's message only the claim's attempt is read: To, From and the body
    # come from the database (see sms_service.take).
    with session_scope() as session:
        plan = sms_service.take(session, sms_id, claimed)
    if plan is None:
        return "not taken: taken by another worker, sent, or its account is blocked"
    # The slot only now, for a message this task holds: a task for a message sent already, or
    # taken by another, takes no slot a waiting message could use.
    slot = carrier_limits.sms_bucket().reserve(settings.RATE_MAX_WAIT_SECONDS)
    if not slot.allowed:
        with session_scope() as session:
            sms_service.release(session, plan)
        raise self.retry(
            args=[sms_id], countdown=slot.wait_seconds - settings.RATE_MAX_WAIT_SECONDS / 2
        )
    time.sleep(slot.wait_seconds)
    with session_scope() as session:
        fenced = sms_service.fence(session, plan)
        # Not sent: the claim is settled as the reason says, and maybe sent anew.
        again = None if fenced else sms_service.fenced_off(session, plan)
    if not fenced:
        if again is sms_service.Again.NOW:
            raise self.retry(args=[sms_id], countdown=backoff_seconds(self.request.retries))
        if again is sms_service.Again.LATER:
            # Another request to the number is out: its SID comes back within a second or so,
            # or reconcile settles it DIAL_AMBIGUOUS_SECONDS after its claim was taken.
            raise self.retry(
                args=[sms_id],
                countdown=1
                + backoff_seconds(self.request.retries, cap=settings.DIAL_AMBIGUOUS_SECONDS),
            )
        return (
            "not sent: its account blocked, its sender removed, its number on a do-not-contact"
            " list, or its claim reconciled"
        )
    try:
        message = twilio.send_sms(
            to=plan.to,
            from_=plan.from_,
            body=plan.body,
            status_callback=sms_service.status_callback_url(plan.sms_id),
        )
    except twilio.TwilioRejected as exc:
        with session_scope() as session:
            sms_service.refused(session, plan, exc.code, exc.message)
        return f"failed: {exc}"
    except twilio.TwilioUnavailable as exc:
        if exc.maybe_sent:
            return f"ambiguous, the sweeper reconciles it: {exc}"
        with session_scope() as session:
            sms_service.release(session, plan)
        raise self.retry(
            args=[sms_id], countdown=backoff_seconds(self.request.retries), exc=exc
        ) from exc
    with session_scope() as session:
        sms_service.record_sent(session, plan, message.sid, message.segments)
    return message.sid


@app.task(name=jobs.RECONCILE, **TWILIO_RETRY)
def reconcile(sms_id: str) -> str:
    with session_scope() as session:
        return sms_service.reconcile(session, sms_id)


@app.task(name=jobs.DISPATCH, acks_late=False)
def dispatch() -> int:
    with dispatching.one_at_a_time("sms") as alone:
        if not alone:
            return 0
        with session_scope() as session:
            return dispatcher.hand_out(session)


@app.task(name=jobs.SWEEP, acks_late=False)
def sweep() -> int:
    with session_scope() as session:
        return dispatcher.sweep(session)
