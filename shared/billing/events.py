"""Stripe events: stored once when they arrive, applied by a worker, in any order.

Credits follow the payment: a checkout session adds its credits once (whether
checkout.session.completed, async_payment_succeeded or both arrive, however often); a refund or a
dispute takes back its share once, and a dispute closed in our favour gives it back once. A
refund or dispute that arrives before its payment is known waits (pending) and is applied when
the payment is.

An event that cannot be applied (not ours, not yet, or its handler raised) is tried again later,
each wait twice the one before, and given up (dead, with its reason) after
STRIPE_EVENT_MAX_ATTEMPTS tries; `toingg events dead` lists those.
"""

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared.billing import disputes, jobs, ledger
from shared.calls import service as calls_service
from shared.config import get_settings
from shared.models import CheckoutSession, ExternalEvent, utcnow
from shared.schemas import text_problem

SOURCE = "stripe"
FIRST_RETRY_SECONDS = 60
LONGEST_RETRY_SECONDS = 6 * 3600

log = logging.getLogger(__name__)


class Pending(Exception):
    """The event cannot be applied yet; it is kept and tried again."""


def event_problem(event: object) -> str | None:
    """Why a body whose signature is good is still no event that can be kept, or None: a
    signature proves who sent a body, not that it holds an id and a type the database takes,
    and the data.object every handler reads."""
    if not isinstance(event, dict):
        return "it is not a JSON object"
    for name, column in (("id", ExternalEvent.external_id), ("type", ExternalEvent.type)):
        value = event.get(name)
        if not isinstance(value, str) or not value:
            return f"it has no {name}"
        longest = column.type.length
        if longest is not None and len(value) > longest:
            return f"its {name} is longer than {longest} characters"
        problem = text_problem(value)
        if problem is not None:
            return f"its {name} {problem}"
    data = event.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        return "it has no data.object"
    return None


def store(session: Session, event: dict[str, Any]) -> bool:
    """Keep a verified event once; True when it is new (and a worker will apply it)."""
    row = ExternalEvent(source=SOURCE, external_id=event["id"], type=event["type"], payload=event)
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        return False
    jobs.apply_event(session, row.id)
    return True


def apply(session: Session, event_row_id: str, *, only_if_due: bool = False) -> str:
    """Try the event once. only_if_due (the retry scan's tasks): an event that another task
    tried since the scan read it waits out its backoff, and the attempt is not counted."""
    # Locked until commit: the same event sent twice (its first task, a retry) is applied once.
    row = session.get(ExternalEvent, event_row_id, with_for_update=True, populate_existing=True)
    if row is None or row.handled_at is not None:
        return "nothing to do"
    if row.dead_at is not None:
        return f"{row.type}: dead ({row.pending_reason})"
    if only_if_due and row.next_attempt_at > utcnow():
        return f"{row.type}: not due yet"
    handler = _HANDLERS.get(row.type)
    if handler is None:
        row.handled_at = utcnow()
        return f"{row.type}: stored, nothing to apply"
    # Only applied and dead events lose their payload (shared.retention).
    assert row.payload is not None
    row.attempts += 1
    try:
        # A handler that fails leaves nothing of its own behind, and the attempt is still
        # recorded.
        with session.begin_nested():
            outcome = handler(session, row.payload["data"]["object"])
    except Pending as exc:
        return _not_applied(row, str(exc))
    except Exception as exc:
        log.exception("Stripe event %s (%s) failed", row.external_id, row.type)
        return _not_applied(row, f"{type(exc).__name__}: {exc}")
    row.handled_at = utcnow()
    row.pending_reason = None
    return f"{row.type}: {outcome}"


def retry_delay(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed try: 1, 2, 4 ... minutes, at most 6 hours."""
    return timedelta(
        seconds=min(FIRST_RETRY_SECONDS * 2 ** min(attempts - 1, 20), LONGEST_RETRY_SECONDS)
    )


def _not_applied(row: ExternalEvent, reason: str) -> str:
    row.pending_reason = reason[:500]
    limit = get_settings().STRIPE_EVENT_MAX_ATTEMPTS
    if row.attempts >= limit:
        row.dead_at = utcnow()
        log.error("Stripe event %s (%s) is dead: %s", row.external_id, row.type, reason)
        return f"{row.type}: dead after {row.attempts} attempts ({reason})"
    row.next_attempt_at = utcnow() + retry_delay(row.attempts)
    return f"{row.type}: pending ({reason}), attempt {row.attempts} of {limit}"


def due_ids(session: Session, limit: int = 500) -> list[str]:
    """Events to try again now, longest due first. Dead events and those waiting out their
    backoff are not due, so however many are stuck, newer events are never behind them."""
    return list(
        session.scalars(
            select(ExternalEvent.id)
            .where(
                ExternalEvent.source == SOURCE,
                ExternalEvent.handled_at.is_(None),
                ExternalEvent.dead_at.is_(None),
                ExternalEvent.next_attempt_at <= utcnow(),
            )
            .order_by(ExternalEvent.next_attempt_at)
            .limit(limit)
        )
    )


def _waiting_for(session: Session, payment_intent: str) -> list[str]:
    """Refunds and disputes of this payment that came before it was credited."""
    return list(
        session.scalars(
            select(ExternalEvent.id).where(
                ExternalEvent.source == SOURCE,
                ExternalEvent.handled_at.is_(None),
                ExternalEvent.dead_at.is_(None),
                ExternalEvent.type.like("charge.%"),
                ExternalEvent.payload[("data", "object", "payment_intent")].as_string()
                == payment_intent,
            )
        )
    )


def dead(session: Session) -> list[ExternalEvent]:
    return list(
        session.scalars(
            select(ExternalEvent)
            .where(ExternalEvent.source == SOURCE, ExternalEvent.dead_at.is_not(None))
            .order_by(ExternalEvent.dead_at.desc())
        )
    )


def _checkout_for_session(session: Session, stripe_session: dict[str, Any]) -> CheckoutSession:
    # Only by the session id Stripe gave when the checkout was recorded: metadata is whatever
    # the session's creator wrote, and a session made elsewhere (by a sandbox that signs with
    # whatever secret it holds) could name any of our checkouts there.
    checkout = session.scalar(
        select(CheckoutSession).where(CheckoutSession.stripe_session_id == stripe_session["id"])
    )
    if checkout is None:
        raise Pending(f"checkout session {stripe_session['id']} is not one of ours yet")
    return checkout


def _checkout_for_payment(session: Session, payment_intent: str | None) -> CheckoutSession:
    """The paid checkout, locked until commit: the refunds and disputes of one payment take
    turns, each seeing what the ones before took back."""
    checkout = (
        session.scalar(
            select(CheckoutSession)
            .where(CheckoutSession.payment_intent_id == payment_intent)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if payment_intent
        else None
    )
    if checkout is None or checkout.status != "paid":
        raise Pending(f"payment {payment_intent} is not credited yet")
    return checkout


def _credit(session: Session, stripe_session: dict[str, Any]) -> str:
    checkout = _checkout_for_session(session, stripe_session)
    entry = ledger.apply(
        session,
        ledger.Change(
            checkout.account_id, checkout.credits, "checkout", "checkout_session", checkout.id,
            reference=f"checkout:{checkout.id}", note=f"Stripe {stripe_session['id']}",
        ),
    )  # fmt: skip
    checkout.status = "paid"
    checkout.paid_at = checkout.paid_at or utcnow()
    checkout.payment_intent_id = checkout.payment_intent_id or stripe_session.get("payment_intent")
    checkout.failure_reason = None
    session.flush()
    if entry is None:
        return "already credited"
    calls_service.resume_waiting(session, checkout.account_id)
    # Refunds or disputes that came before this payment can be applied now.
    if checkout.payment_intent_id:
        for event_id in _waiting_for(session, checkout.payment_intent_id):
            jobs.apply_event(session, event_id)
    return f"credited {checkout.credits}"


def _session_completed(session: Session, obj: dict[str, Any]) -> str:
    if obj.get("payment_status") != "paid":
        return "payment not settled yet (async); waiting for async_payment_succeeded"
    return _credit(session, obj)


def _async_payment_failed(session: Session, obj: dict[str, Any]) -> str:
    checkout = _checkout_for_session(session, obj)
    if checkout.status != "paid":
        checkout.status = "failed"
        checkout.failure_reason = "the asynchronous payment failed"
    return "payment failed"


def _share(checkout: CheckoutSession, amount_cents: int, paid_cents: int) -> int:
    """The credits that `amount_cents` of a `paid_cents` payment bought (rounded up: money
    taken back never leaves credits that were not paid for)."""
    if paid_cents <= 0:
        return checkout.credits
    return min(checkout.credits, -(-checkout.credits * amount_cents // paid_cents))


def _charge_refunded(session: Session, charge: dict[str, Any]) -> str:
    checkout = _checkout_for_payment(session, charge.get("payment_intent"))
    target = _share(checkout, int(charge["amount_refunded"]), int(charge["amount"]))
    taken = -ledger.total_for_subject(session, "checkout_session", checkout.id, "refund")
    if target <= taken:
        return "refund already taken back"
    ledger.apply(
        session,
        ledger.Change(
            checkout.account_id, -(target - taken), "refund", "checkout_session", checkout.id,
            reference=f"refund:{charge['id']}:{charge['amount_refunded']}",
            note=f"{charge['id']}: {charge['amount_refunded']} of {charge['amount']} refunded",
        ),
    )  # fmt: skip
    return f"took back {target - taken}"


# Closed with the money ours: what the dispute took comes back.
_KEPT = frozenset({"won", "warning_closed"})


def _dispute(session: Session, dispute: dict[str, Any], *, closed: bool, reinstated: bool) -> str:
    """Any event about a dispute, in any order, however often: the first takes back the
    disputed credits (once); a close in our favour, or Stripe's reinstatement of the funds,
    gives back what was taken (once)."""
    checkout = _checkout_for_payment(session, dispute.get("payment_intent"))
    status = str(dispute.get("status") or "")
    disputes.track(
        session, checkout, dispute["id"], status, closed=closed or status in disputes.FINAL
    )
    credits = _share(checkout, int(dispute["amount"]), checkout.amount_cents)
    taken = ledger.apply(
        session,
        ledger.Change(
            checkout.account_id, -credits, "dispute", "checkout_session", checkout.id,
            reference=f"dispute:{dispute['id']}", note=f"{dispute['id']}: {dispute.get('reason')}",
        ),
    )  # fmt: skip
    outcome = f"took back {credits}" if taken else "dispute already applied"
    back = 0
    if status in _KEPT and (closed or reinstated):
        back = -ledger.delta_of(session, f"dispute:{dispute['id']}")
    elif reinstated:
        # Lost, yet funds come back: a payment refunded in part and then disputed in full gets
        # the refunded part back, which its refund already took back here.
        refunded = -ledger.total_for_subject(session, "checkout_session", checkout.id, "refund")
        back = min(refunded, -ledger.delta_of(session, f"dispute:{dispute['id']}"))
    if back > 0:
        given = ledger.apply(
            session,
            ledger.Change(
                checkout.account_id, back, "dispute_reinstated", "checkout_session", checkout.id,
                reference=f"dispute:{dispute['id']}:reinstated",
                note=f"{dispute['id']}: {status}",
            ),
        )  # fmt: skip
        if given is not None:
            calls_service.resume_waiting(session, checkout.account_id)
            outcome += f", gave back {back}"
    return outcome


def _dispute_opened(session: Session, dispute: dict[str, Any]) -> str:
    return _dispute(session, dispute, closed=False, reinstated=False)


def _dispute_closed(session: Session, dispute: dict[str, Any]) -> str:
    return _dispute(session, dispute, closed=True, reinstated=False)


def _dispute_funds_reinstated(session: Session, dispute: dict[str, Any]) -> str:
    return _dispute(session, dispute, closed=False, reinstated=True)


_HANDLERS = {
    "checkout.session.completed": _session_completed,
    "checkout.session.async_payment_succeeded": _credit,
    "checkout.session.async_payment_failed": _async_payment_failed,
    "charge.refunded": _charge_refunded,
    "charge.dispute.created": _dispute_opened,
    "charge.dispute.funds_withdrawn": _dispute_opened,
    "charge.dispute.closed": _dispute_closed,
    "charge.dispute.funds_reinstated": _dispute_funds_reinstated,
}
