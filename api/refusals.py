"""Keeping a refusal at acceptance though its request is refused: the 422 rolls back the
request's transaction, so the refusal's event commits in a transaction of its own.

A refusal leaves its Idempotency-Key free (nothing was accepted), so a retry is refused again;
it is still the one request, and keeps the one event: the refusal of a keyed request is named
by its key, and its retries find it."""

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from fastapi import HTTPException, status
from sqlalchemy.orm import Session

from api import idempotency
from shared.batches.service import NothingToCall
from shared.db import UNAVAILABLE, session_scope
from shared.dnc import refusals
from shared.dnc.service import OnTheList
from shared.events import types
from shared.idempotency import service as keys
from shared.models import new_id

log = logging.getLogger(__name__)


@contextmanager
def _kept(refusal: str) -> Iterator[Session]:
    """The refusal's own transaction. A 422 tells the client its refusal is on record (GET
    /api/dnc/{number} and the events show it), so one the database failed to record is not
    answered 422 but 503: nothing was placed either way, and the client's retry is refused
    again and recorded then (once, with the same Idempotency-Key), where a 422 would leave a
    refusal no audit ever finds. A failure no retry gets past is left to be 500, as any other:
    a 503 would have the client retry it for ever."""
    try:
        with session_scope() as own:
            yield own
    except UNAVAILABLE:
        log.exception("%s: the refusal could not be recorded", refusal)
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"{refusal}, but the refusal could not be recorded; retry shortly",
            headers={"Retry-After": "1"},
        ) from None


def refused(session: Session, account_id: str, event_type: str, exc: OnTheList) -> None:
    """A single call's or SMS's refusal (call.refused, sms.refused), once for each request."""
    _record(
        session,
        str(exc),
        types.REFUSAL,
        new_id(),
        lambda own, subject: refusals.refused(
            own, account_id, event_type, exc.number, str(exc), exc.rule, subject
        ),
    )


def batch_refused(session: Session, account_id: str, exc: NothingToCall) -> None:
    """A batch refused whole: its listed rows' event, under the id it would have had (a keyed
    request's: one named by its key), once for each request."""
    if not exc.refused:
        return
    _record(
        session,
        f"{len(exc.refused)} of the batch's numbers are on a do-not-contact list",
        types.BATCH,
        exc.batch_id,
        lambda own, subject: refusals.batch_refused(own, account_id, subject, exc.refused),
    )


def _record(
    session: Session,
    refusal: str,
    subject_type: str,
    new: str,
    write: Callable[[Session, str], object],
) -> None:
    """The request's work let go, then its refusal written in a transaction of its own under
    its subject (`new` for a request without a key, else its key's), unless a retry with the
    key finds it kept already."""
    key = idempotency.held(session)
    # The request's work is let go first: nothing it holds waits on the refusal's commit.
    session.rollback()
    with _kept(refusal) as own:
        if key is None:
            write(own, new)
            return
        subject = key.refusal_subject()
        # A retry refused at the same moment waits here, and then finds this refusal.
        keys.hold(own, key.row_id)
        if not refusals.written(own, subject_type, subject):
            write(own, subject)
