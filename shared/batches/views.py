"""A batch as GET /api/batches/{id} shows it: what the API answers, and what its events carry."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from shared.batches import repository
from shared.batches import status as bst
from shared.batches.schemas import BatchOut
from shared.calls import status as call_status
from shared.campaigns import service as campaigns_service
from shared.models import Batch, utcnow


def summary_status(batch: Batch, counts: dict[str, int]) -> str:
    """queued, running, paused, insufficient credits, completed or canceled, from its calls as
    they are now: the stored status follows them a moment after the change that ended the last
    call (`lifecycle.follow`)."""
    if batch.status == bst.CANCELED:
        return batch.status
    done = sum(n for status, n in counts.items() if status in call_status.FINAL)
    if done == batch.total:
        return bst.COMPLETED
    if batch.status == bst.PAUSED:
        return batch.status
    waiting = counts.get(call_status.INSUFFICIENT_CREDITS, 0)
    if waiting and waiting + done == batch.total:
        return "insufficient credits"
    return bst.QUEUED if batch.status == bst.QUEUED else bst.RUNNING


@dataclass
class Progress:
    dial_rate: float
    estimated_finish: datetime | None


def progress(session: Session, batch: Batch, counts: dict[str, int]) -> Progress:
    """The batch's dial rate over the last ten seconds, and when it would finish at that rate."""
    now = utcnow()
    rate = repository.dials_since(session, batch.id, now - timedelta(seconds=10)) / 10
    remaining = counts.get(call_status.QUEUED, 0) + counts.get(call_status.INSUFFICIENT_CREDITS, 0)
    finish = None
    if remaining and batch.status not in bst.STOPPED and rate > 0:
        finish = now + timedelta(seconds=remaining / rate)
    return Progress(dial_rate=rate, estimated_finish=finish)


def out(session: Session, batch: Batch) -> BatchOut:
    counts = repository.counts_by_status(session, batch.id)
    campaign = campaigns_service.get(session, batch.account_id, batch.campaign_id)
    shown = progress(session, batch, counts)
    return BatchOut(
        id=batch.id,
        campaign=campaign.name,
        status=summary_status(batch, counts),
        total=batch.total,
        duplicates=batch.duplicates,
        rejected=batch.rejected,
        counts=counts,
        waitingForHours=counts.get(call_status.SCHEDULED, 0),
        nextHoursOpenAt=repository.next_opening(session, batch.id)
        if counts.get(call_status.SCHEDULED)
        else None,
        dialRatePerSecond=shown.dial_rate,
        estimatedFinishAt=shown.estimated_finish,
        createdAt=batch.created_at,
        webhook=batch.webhook,
    )
