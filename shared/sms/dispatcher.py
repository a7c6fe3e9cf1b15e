"""The database knows which messages are owed; the broker carries only what can be sent now.

`hand_out` claims queued messages for workers just in time, oldest first: a window of two and
a half seconds of SMS_RATE_PER_SECOND, less what is already out with workers and not sent, so
a backlog waits in the database, not in the broker, and a send task's rate slot goes to a
message its task holds. Each claimed message goes to a send task that only has to take its
claim. A lost message (a killed worker, a broker restart) only delays it: after
DISPATCH_STALE_SECONDS its task is sent again. `sweep` reconciles messages a worker took but
never got a SID for.
"""

import uuid
from datetime import timedelta

from sqlalchemy.orm import Session

from shared import dispatch
from shared.config import get_settings
from shared.models import utcnow
from shared.sms import jobs, repository
from shared.sms import service as sms_service


def window() -> int:
    return dispatch.window(get_settings().SMS_RATE_PER_SECOND)


def hand_out(session: Session) -> int:
    stale_before = dispatch.stale_before()
    dispatch.hold_window(session, "sms")
    sms_service.resend_untaken(session, stale_before)
    free = window() - repository.count_unsent(session, stale_before)
    if free <= 0:
        return 0
    owed = repository.owed_ids(session, stale_before, free)
    attempt = str(uuid.uuid4())
    claimed = repository.claim(session, owed, attempt) if owed else []
    for sms_id in claimed:
        jobs.send(session, sms_id, attempt)
    return len(claimed)


def sweep(session: Session) -> int:
    started_before = utcnow() - timedelta(seconds=get_settings().DIAL_AMBIGUOUS_SECONDS)
    stuck = repository.stuck_sending_ids(session, started_before)
    for sms_id in stuck:
        jobs.reconcile(session, sms_id)
    return len(stuck)
