"""Batches: many numbers for one campaign, stored in one transaction and dialled by workers."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from shared.batches import repository, stops
from shared.batches.schemas import NumberEntry, RejectedRow
from shared.calls import jobs as call_jobs
from shared.calls import service as calls_service
from shared.calls import status as call_status
from shared.config import get_settings
from shared.models import Account, Batch, Campaign, new_id, utcnow
from shared.telephony.numbers import InvalidNumber, to_e164


class BatchNotFound(LookupError):
    pass


class NothingToCall(ValueError):
    def __init__(self, rejected: list[RejectedRow]) -> None:
        super().__init__("numberList has no valid phone number")
        self.rejected = rejected


@dataclass
class BatchResult:
    batch: Batch
    accepted: int
    duplicates: int
    rejected: list[RejectedRow] = field(default_factory=list)


def create_batch(
    session: Session, account: Account, campaign: Campaign, entries: list[NumberEntry]
) -> BatchResult:
    """Store every valid number as a queued call; report invalid rows; call a repeat once.

    The calls are not pushed into the broker here: the dispatcher hands them to workers at the
    pace they can dial, so a huge batch costs the request one bulk insert.
    """
    region = get_settings().DEFAULT_REGION
    seen: set[str] = set()
    rejected: list[RejectedRow] = []
    duplicates = 0
    batch_id = new_id()
    now = utcnow()
    rows = []
    for index, entry in enumerate(entries):
        try:
            number = to_e164(entry.clientNumber, region)
        except InvalidNumber as exc:
            rejected.append(
                RejectedRow(index=index, clientNumber=entry.clientNumber, reason=str(exc))
            )
            continue
        if number in seen:
            duplicates += 1
            continue
        seen.add(number)
        rows.append(
            {
                "id": new_id(),
                "account_id": account.id,
                "campaign_id": campaign.id,
                "batch_id": batch_id,
                "to_number": number,
                "from_number": campaign.caller_id,
                "name": entry.clientName,
                "status": call_status.QUEUED,
                "created_at": now,
                "updated_at": now,
            }
        )
    if not rows:
        raise NothingToCall(rejected)
    batch = Batch(
        id=batch_id,
        account_id=account.id,
        campaign_id=campaign.id,
        status="queued",
        total=len(rows),
        duplicates=duplicates,
        rejected=len(rejected),
    )
    session.add(batch)
    session.flush()
    repository.insert_calls(session, rows)
    call_jobs.dispatch(session)
    return BatchResult(batch=batch, accepted=len(rows), duplicates=duplicates, rejected=rejected)


def get_for_account(session: Session, account_id: str, batch_id: str) -> Batch:
    batch = repository.get_for_account(session, account_id, batch_id)
    if batch is None:
        raise BatchNotFound(batch_id)
    return batch


class BatchIsOver(ValueError):
    pass


def summary_status(batch: Batch, counts: dict[str, int]) -> str:
    """queued, running, paused, insufficient credits, completed or canceled."""
    if batch.status in ("paused", "canceled"):
        return batch.status
    done = sum(n for status, n in counts.items() if status in call_status.FINAL)
    if done == batch.total:
        return "completed"
    waiting = counts.get(call_status.INSUFFICIENT_CREDITS, 0)
    if waiting and waiting + done == batch.total:
        return "insufficient credits"
    return batch.status


def counts(session: Session, batch: Batch) -> dict[str, int]:
    return repository.counts_by_status(session, batch.id)


def pause(session: Session, batch: Batch) -> Batch:
    """No new call of the batch starts from now on (workers check at the claim, just before
    dialing); calls already live finish."""
    if batch.status == "canceled":
        raise BatchIsOver(batch.id)
    batch.status = "paused"
    stops.mark_stopped(batch.id)
    session.flush()
    return batch


def resume(session: Session, batch: Batch) -> Batch:
    if batch.status == "canceled":
        raise BatchIsOver(batch.id)
    if batch.status == "paused":
        batch.status = "running"
        stops.clear(batch.id)
        repository.unhand_queued(session, batch.id)
        call_jobs.dispatch(session)
    session.flush()
    return batch


def cancel(session: Session, batch: Batch, hang_up: bool) -> int:
    """Every call not yet handed to Twilio is canceled; with hang_up, live calls are hung up.
    Returns how many calls were canceled before dialing."""
    batch.status = "canceled"
    stops.mark_stopped(batch.id)
    canceled = repository.cancel_unstarted(session, batch.id)
    if hang_up:
        for call_id in repository.live_call_ids(session, batch.id):
            calls_service.request_hang_up(session, batch.account_id, call_id)
    session.flush()
    return canceled


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
    if batch.status not in ("paused", "canceled") and rate > 0:
        finish = now + timedelta(seconds=remaining / rate)
    return Progress(dial_rate=rate, estimated_finish=finish)
