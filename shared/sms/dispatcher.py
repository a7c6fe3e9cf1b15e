"""The database knows which messages are owed; the broker carries only what can be sent now.

`hand_out` claims queued messages for workers just in time: a window of two and a half seconds
of SMS_RATE_PER_SECOND, less what is already out with workers and not sent, shared between the
accounts with messages owed in turn, the account served longest ago first, and each account's
oldest first. So a backlog waits in the database, not in the broker; one account's backlog
does not hold back the others' messages; and a send task's rate slot goes to a message its task
holds. Each claimed message goes to a send task that only has to take its
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
    """One tick, in one transaction (a message's claim locks no account). Returns how many
    messages were claimed."""
    stale_before = dispatch.stale_before()
    dispatch.hold_window(session, "sms")
    sms_service.resend_untaken(session, stale_before)
    free = window() - repository.count_unsent(session, stale_before)
    if free <= 0:
        return 0
    attempt = str(uuid.uuid4())
    served: list[str] = []

    def serve(account_id: str, take: int) -> int:
        owed = repository.owed_ids(session, stale_before, account_id, take)
        claimed = repository.claim(session, owed, attempt) if owed else []
        for sms_id in claimed:
            jobs.send(session, sms_id, attempt)
        if claimed:
            served.append(account_id)
        return len(claimed)

    handed = dispatch.deal(free, repository.owed_accounts(session, stale_before), serve)
    repository.note_served(session, sorted(set(served)))
    return handed


def sweep(session: Session) -> int:
    started_before = utcnow() - timedelta(seconds=get_settings().DIAL_AMBIGUOUS_SECONDS)
    stuck = repository.stuck_sending_ids(session, started_before)
    for sms_id in stuck:
        jobs.reconcile(session, sms_id)
    return len(stuck)
