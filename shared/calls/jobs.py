"""Task names for calls, and enqueueing them after the caller's commit."""

from typing import Any

from sqlalchemy.orm import Session

from shared.queue import enqueue

DIAL = "calls.dial"
RECONCILE = "calls.reconcile"
RECONCILE_LIVE = "calls.reconcile_live"
HANG_UP = "calls.hang_up"
SWEEP_HANG_UPS = "calls.sweep_hang_ups"
DISPATCH = "calls.dispatch"
SWEEP = "calls.sweep"
SETTLE = "calls.settle"


def dial(session: Session, call_id: str, claimed: dict[str, Any] | None = None) -> None:
    """Dial a call: one the dispatcher claimed (its plan as a dict), or one to claim first."""
    if claimed is None:
        enqueue(session, DIAL, call_id)
    else:
        enqueue(session, DIAL, call_id, claimed)


def reconcile(session: Session, call_id: str) -> None:
    enqueue(session, RECONCILE, call_id)


def reconcile_live(session: Session, call_id: str) -> None:
    enqueue(session, RECONCILE_LIVE, call_id)


def hang_up(session: Session, call_id: str) -> None:
    enqueue(session, HANG_UP, call_id)


def dispatch(session: Session) -> None:
    enqueue(session, DISPATCH)
