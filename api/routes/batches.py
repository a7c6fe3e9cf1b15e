"""Batches: many numbers for one campaign in one request."""

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from sqlalchemy.orm import Session

from api.deps import CurrentAccount, SessionDep
from api.errors import invalid_field, require_credits, require_not_after_ahead, require_unblocked
from api.idempotency import Idempotent, IdempotentRoute
from api.refusals import batch_refused
from shared.batches import service as batches_service
from shared.batches import views as batch_views
from shared.batches.schemas import BatchAccepted, BatchCanceled, BatchOut, BatchRequest
from shared.billing import prices
from shared.caller_ids import service as caller_ids
from shared.campaigns import service as campaigns_service
from shared.models import Account, Batch
from shared.schemas import Line
from shared.webhooks import addresses

router = APIRouter(tags=["batches"], route_class=IdempotentRoute)


def accept_batch(session: Session, account: Account, body: BatchRequest) -> BatchAccepted:
    require_unblocked(session, account)
    require_not_after_ahead(body.notAfter)
    try:
        campaign = campaigns_service.get_by_name(
            session, account.id, body.campaign, for_new_calls=True
        )
    except campaigns_service.CampaignNotFound:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"campaign {body.campaign!r} not found"
        ) from None
    require_credits(account.credits, prices.call_reservation(campaign.max_call_minutes))
    try:
        result = batches_service.create_batch(
            session,
            account,
            campaign,
            body.numberList,
            start_at=body.startAt,
            not_after=body.notAfter,
            webhook=body.webhook,
        )
    except caller_ids.CallerIdNotAllowed as exc:
        raise invalid_field(["campaign"], f"campaign {campaign.name!r}: {exc}") from None
    except addresses.RefusedUrl as exc:
        raise invalid_field(["webhook"], str(exc)) from None
    except batches_service.NothingToCall as exc:
        batch_refused(session, account.id, exc)
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            [
                {
                    "loc": ["body", "numberList", row.index, row.field],
                    "msg": row.reason,
                    "type": "value_error",
                }
                for row in exc.rejected
            ],
        ) from None
    return BatchAccepted(
        batchId=result.batch.id,
        status=result.batch.status,
        accepted=result.accepted,
        duplicates=result.duplicates,
        rejected=result.rejected,
    )


@router.post(
    "/make_batch_toingg",
    response_model=BatchAccepted,
    summary="Call a list of numbers",
    dependencies=[Idempotent],
)
def make_batch_toingg(
    body: BatchRequest, session: SessionDep, account: CurrentAccount
) -> BatchAccepted:
    return accept_batch(session, account, body)


def _batch(session: Session, account: Account, batch_id: str) -> Batch:
    try:
        return batches_service.get_for_account(session, account.id, batch_id)
    except batches_service.BatchNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"batch {batch_id!r} not found") from None


@router.get("/batches/{batch_id}", response_model=BatchOut, summary="A batch and its progress")
def get_batch(batch_id: Line, session: SessionDep, account: CurrentAccount) -> BatchOut:
    return batch_views.out(session, _batch(session, account, batch_id))


def _over(exc: batches_service.BatchIsOver) -> HTTPException:
    return HTTPException(status.HTTP_409_CONFLICT, str(exc))


def _control(
    session: Session, account: Account, batch_id: str, change: Callable[[Session, Batch], object]
) -> BatchOut:
    batch = _batch(session, account, batch_id)
    try:
        change(session, batch)
    except batches_service.BatchIsOver as exc:
        raise _over(exc) from None
    return batch_views.out(session, batch)


@router.post("/batches/{batch_id}/pause", response_model=BatchOut, summary="Start no new call")
def pause_batch(batch_id: Line, session: SessionDep, account: CurrentAccount) -> BatchOut:
    return _control(session, account, batch_id, batches_service.pause)


@router.post("/batches/{batch_id}/resume", response_model=BatchOut, summary="Go on dialing")
def resume_batch(batch_id: Line, session: SessionDep, account: CurrentAccount) -> BatchOut:
    return _control(session, account, batch_id, batches_service.resume)


@router.post(
    "/batches/{batch_id}/cancel",
    response_model=BatchCanceled,
    summary="Cancel every call not yet placed (hangUp=true hangs up live ones too)",
)
def cancel_batch(
    batch_id: Line,
    session: SessionDep,
    account: CurrentAccount,
    hangUp: Annotated[bool, Query(description="also hang up the batch's live calls")] = False,
) -> BatchCanceled:
    batch = _batch(session, account, batch_id)
    try:
        canceled = batches_service.cancel(session, batch, hang_up=hangUp)
    except batches_service.BatchIsOver as exc:
        raise _over(exc) from None
    return BatchCanceled(
        batchId=batch.id, status=batch.status, canceledCalls=canceled, hangingUp=hangUp
    )
