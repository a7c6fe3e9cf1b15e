"""SMS tasks: send once, reconcile the ambiguous, and hand out what is owed."""

import time

from celery import Task

from shared.config import get_settings
from shared.db import session_scope
from shared.queue import get_celery
from shared.ratelimit import carrier as carrier_limits
from shared.sms import jobs
from shared.sms import service as sms_service
from shared.telephony import client as twilio
from workers.tasks.retry import TWILIO_RETRY, backoff_seconds

app = get_celery()


@app.task(name=jobs.SEND, bind=True, max_retries=None)
def send(self: Task, sms_id: str) -> str:
    settings = get_settings()
    slot = carrier_limits.sms_bucket().reserve(settings.RATE_MAX_WAIT_SECONDS)
    if not slot.allowed:
        raise self.retry(countdown=slot.wait_seconds - settings.RATE_MAX_WAIT_SECONDS / 2)
    time.sleep(slot.wait_seconds)
    with session_scope() as session:
        plan = sms_service.claim(session, sms_id)
    if plan is None:
        return "not queued"
    try:
        message = twilio.send_sms(
            to=plan.to,
            from_=plan.from_,
            body=plan.body,
            status_callback=sms_service.status_callback_url(plan.sms_id),
        )
    except twilio.TwilioRejected as exc:
        with session_scope() as session:
            sms_service.fail(session, plan, exc.code, exc.message)
        return f"failed: {exc}"
    except twilio.TwilioUnavailable as exc:
        if exc.maybe_sent:
            return f"ambiguous, the sweeper reconciles it: {exc}"
        with session_scope() as session:
            sms_service.release(session, plan)
        raise self.retry(countdown=backoff_seconds(self.request.retries), exc=exc) from exc
    with session_scope() as session:
        sms_service.record_sent(session, plan, message.sid, message.segments)
    return message.sid


@app.task(name=jobs.RECONCILE, **TWILIO_RETRY)
def reconcile(sms_id: str) -> str:
    with session_scope() as session:
        return sms_service.reconcile(session, sms_id)


@app.task(name=jobs.SWEEP, acks_late=False)
def sweep() -> int:
    with session_scope() as session:
        return sms_service.hand_out(session)
