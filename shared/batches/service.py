"""Batches: many numbers for one campaign, stored in one transaction and dialled by workers."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from shared.batches import lifecycle, repository, stops
from shared.batches import status as bst
from shared.batches.schemas import NumberEntry, RejectedRow
from shared.calling_hours import rules as calling_rules
from shared.calling_hours import service as calling_hours
from shared.calls import jobs as call_jobs
from shared.calls import lifecycle as calls_lifecycle
from shared.calls import service as calls_service
from shared.config import get_settings
from shared.dnc import refusals
from shared.dnc import service as dnc
from shared.models import Account, Batch, Campaign, new_id, utcnow
from shared.schemas import NAME_MAX_LENGTH
from shared.telephony import twiml
from shared.telephony.numbers import InvalidNumber, to_e164
from shared.webhooks import per_call


class BatchNotFound(LookupError):
    pass


class NothingToCall(ValueError):
    """No row is left to call: `refused` are the rows of listed numbers, whose event
    (refusals.batch_refused, under `batch_id`) the caller keeps though no batch is made."""

    def __init__(
        self,
        rejected: list[RejectedRow],
        batch_id: str = "",
        refused: list[tuple[int, str, dict[str, Any]]] | None = None,
    ) -> None:
        super().__init__("numberList has no valid phone number")
        self.rejected = rejected
        self.batch_id = batch_id
        self.refused = refused or []


@dataclass
class BatchResult:
    batch: Batch
    accepted: int
    duplicates: int
    rejected: list[RejectedRow] = field(default_factory=list)


def create_batch(
    session: Session,
    account: Account,
    campaign: Campaign,
    entries: list[NumberEntry],
    *,
    start_at: datetime | None = None,
    not_after: datetime | None = None,
    webhook: str | None = None,
) -> BatchResult:
    """Store every valid number as a queued call (scheduled, when outside its hours or before
    the batch's startAt); report invalid rows and numbers the account may not call (its
    do-not-contact list, the operators'); call a repeat once. The batch's events and its
    calls' go to `webhook` too (addresses.RefusedUrl when they may not).

    The calls are not pushed into the broker here: the dispatcher hands them to workers at the
    pace they can dial, so a huge batch costs the request one bulk insert.
    """
    region = get_settings().DEFAULT_REGION
    seen: set[str] = set()
    rejected: list[RejectedRow] = []
    duplicates = 0
    batch_id = new_id()
    now = utcnow()
    terms = calls_service.accepted_terms(session, campaign)
    # A script saved within Twilio's limits for any name needs no look at each row's name.
    any_name_fits = twiml.script_problem(campaign.script, NAME_MAX_LENGTH) is None
    hours = calling_hours.campaign_hours(campaign.calling_hours)
    rules_on = get_settings().CALLING_RULES
    clock = calling_hours.now()
    # The numbers of a batch fall in a few places (zones and rules): each is decided once.
    decided: dict[tuple[tuple[str, ...], tuple[str, ...]], calling_rules.Verdict] = {}
    rows = []
    indexes: list[int] = []
    for index, entry in enumerate(entries):
        try:
            number = to_e164(entry.clientNumber, region)
        except InvalidNumber as exc:
            rejected.append(
                RejectedRow(index=index, clientNumber=entry.clientNumber, reason=str(exc))
            )
            continue
        spoken = (
            None
            if any_name_fits
            else twiml.spoken_problem(twiml.render_script(campaign.script, entry.clientName))
        )
        if spoken is not None:
            reason = f"the script, with this clientName, {spoken}"
            rejected.append(
                RejectedRow(
                    index=index, clientNumber=entry.clientNumber, reason=reason, field="clientName"
                )
            )
            continue
        if number in seen:
            duplicates += 1
            continue
        place = calling_rules.place_of(
            number, entry.timezone, campaign.default_timezone, rules_on=rules_on
        )
        key = (place.zones, tuple(rule["key"] for rule in place.rules))
        if key not in decided:
            decided[key] = calling_rules.decide(
                place, hours, clock, start_at=start_at, not_after=not_after
            )
        try:
            held = calling_hours.on_acceptance(decided[key])
        except calling_hours.NeverPlaced as exc:
            rejected.append(
                RejectedRow(
                    index=index, clientNumber=entry.clientNumber, reason=str(exc), field=exc.field
                )
            )
            continue
        seen.add(number)
        indexes.append(index)
        rows.append(
            {
                "id": new_id(),
                "account_id": account.id,
                "batch_id": batch_id,
                "to_number": number,
                "name": entry.clientName,
                "timezone": entry.timezone,
                "start_at": start_at,
                "not_after": not_after,
                "webhook": webhook,
                **held,
                **terms,
                "created_at": now,
                "updated_at": now,
            }
        )
    # One look for the whole batch, after the numbers were read.
    listed = dnc.listed_among(session, account.id, [row["to_number"] for row in rows])
    refused: list[tuple[int, str, dict[str, Any]]] = []
    if listed:
        kept = []
        for index, row in zip(indexes, rows, strict=True):
            if row["to_number"] in listed:
                refused.append((index, row["to_number"], refusals.rule(listed[row["to_number"]])))
                rejected.append(
                    RejectedRow(
                        index=index,
                        clientNumber=entries[index].clientNumber,
                        reason=f"{row['to_number']} is on the do-not-contact list",
                    )
                )
            else:
                kept.append(row)
        rows = kept
        rejected.sort(key=lambda row: row.index)
    if not rows:
        raise NothingToCall(rejected, batch_id, refused)
    if webhook is not None:
        per_call.bind(session, account.id, webhook)
    batch = Batch(
        webhook=webhook,
        id=batch_id,
        account_id=account.id,
        campaign_id=campaign.id,
        total=len(rows),
        duplicates=duplicates,
        rejected=len(rejected),
    )
    lifecycle.create(session, batch)
    if refused:
        refusals.batch_refused(session, account.id, batch_id, refused)
    calls_lifecycle.accept_rows(session, rows)
    call_jobs.dispatch(session)
    return BatchResult(batch=batch, accepted=len(rows), duplicates=duplicates, rejected=rejected)


def get_for_account(session: Session, account_id: str, batch_id: str) -> Batch:
    batch = repository.get_for_account(session, account_id, batch_id)
    if batch is None:
        raise BatchNotFound(batch_id)
    return batch


class BatchIsOver(ValueError):
    """The batch is canceled or completed: nothing changes it any more."""

    def __init__(self, batch_id: str, status: str) -> None:
        super().__init__(f"batch {batch_id!r} is {status}")
        self.status = status


def counts(session: Session, batch: Batch) -> dict[str, int]:
    return repository.counts_by_status(session, batch.id)


def _over(session: Session, batch: Batch) -> BatchIsOver:
    """Why a change refused to move the batch: it is canceled, or all its calls have ended."""
    session.refresh(batch)
    return BatchIsOver(batch.id, bst.CANCELED if batch.status == bst.CANCELED else bst.COMPLETED)


# Each change is one move of the batch's lifecycle (`lifecycle.move`), which appends its
# event. The stop flag follows the commit.


def pause(session: Session, batch: Batch) -> Batch:
    """No new call of the batch starts from now on (workers check at the claim and when they
    take it, and the stop flag just before dialing); calls already live finish. Pausing a
    paused batch changes nothing."""
    moved = lifecycle.move(session, batch.id, lifecycle.PAUSE)
    session.refresh(batch)
    if moved is None and not (
        batch.status == bst.PAUSED and repository.has_unfinished(session, batch.id)
    ):
        raise _over(session, batch)
    stops.follow_on_commit(session, batch.id)
    return batch


def resume(session: Session, batch: Batch) -> Batch:
    """A paused batch goes on (and waits for credits, if all its calls left do). Resuming a
    batch that is not paused changes nothing."""
    moved = lifecycle.move(session, batch.id, lifecycle.RESUME)
    session.refresh(batch)
    if moved is not None:
        stops.follow_on_commit(session, batch.id)
        lifecycle.follow_on_commit(session, batch.id)
        repository.unhand_queued(session, batch.id)
        call_jobs.dispatch(session)
    elif batch.status == bst.CANCELED or not repository.has_unfinished(session, batch.id):
        raise _over(session, batch)
    return batch


def cancel(session: Session, batch: Batch, hang_up: bool) -> int:
    """Every call not yet handed to Twilio is canceled; with hang_up, live calls are hung up.
    Returns how many calls were canceled before dialing. Canceling a canceled batch again
    cancels what is left (hanging up too, if asked); a completed batch stays completed.

    The batch's row is changed (and so locked) before its calls: a worker handing a call back
    meanwhile either waits for the cancel and sees it (`calls.service.release`), or went first
    and its call is found queued here."""
    moved, canceled = lifecycle.cancel(session, batch.id)
    if moved is None:
        over = _over(session, batch)
        if over.status != bst.CANCELED:
            raise over
    stops.follow_on_commit(session, batch.id)
    if hang_up:
        for call_id in repository.live_call_ids(session, batch.id):
            calls_service.request_hang_up(session, batch.account_id, call_id)
    session.refresh(batch)
    return canceled
