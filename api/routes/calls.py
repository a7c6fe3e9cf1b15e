"""The seed call endpoints, hang-up, and reading calls back."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query, status
from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler, TypeAdapter, ValidationError
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema
from sqlalchemy.orm import Session

from api.deps import CurrentAccount, SessionDep
from api.errors import (
    from_validation_error,
    invalid_field,
    require_credits,
    require_not_after_ahead,
    require_unblocked,
)
from api.idempotency import Idempotent, IdempotentRoute
from api.paging import Limit, Offset
from api.refusals import refused
from api.routes.batches import accept_batch
from shared.batches.schemas import BatchAccepted, BatchRequest
from shared.billing import prices
from shared.caller_ids import service as caller_ids
from shared.calling_hours import service as calling_hours
from shared.calls import repository as calls_repository
from shared.calls import service as calls_service
from shared.calls import status as call_status
from shared.calls import views as call_views
from shared.calls.schemas import (
    CallAccepted,
    CallOut,
    CallPage,
    CallSummary,
    HangUpResult,
    MakeCallDetailsRequest,
    MakeCallRequest,
)
from shared.campaigns import service as campaigns_service
from shared.config import get_settings
from shared.dnc import service as dnc
from shared.events import types
from shared.models import Account, Campaign
from shared.schemas import Line
from shared.telephony.numbers import InvalidNumber, to_e164
from shared.webhooks import addresses

router = APIRouter(tags=["calls"], route_class=IdempotentRoute)


def _campaign(
    session: Session, account: Account, name: str, *, for_new_calls: bool = False
) -> Campaign:
    try:
        return campaigns_service.get_by_name(session, account.id, name, for_new_calls=for_new_calls)
    except campaigns_service.CampaignNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"campaign {name!r} not found") from None


def _place(
    session: Session, account: Account, body: MakeCallRequest, campaign_field: str = "campaign"
) -> CallAccepted:
    require_unblocked(session, account)
    require_not_after_ahead(body.notAfter)
    campaign = _campaign(session, account, body.campaign, for_new_calls=True)
    require_credits(account.credits, prices.call_reservation(campaign.max_call_minutes))
    try:
        call = calls_service.place_call(
            session,
            account,
            campaign,
            body.name,
            body.phoneNumber,
            timezone=body.timezone,
            start_at=body.startAt,
            not_after=body.notAfter,
            webhook=body.webhook,
        )
    except dnc.OnTheList as exc:
        refused(session, account.id, types.CALL_REFUSED, exc)
        raise invalid_field(["phoneNumber"], str(exc)) from None
    except InvalidNumber as exc:
        raise invalid_field(["phoneNumber"], str(exc)) from None
    except addresses.RefusedUrl as exc:
        raise invalid_field(["webhook"], str(exc)) from None
    except calling_hours.NeverPlaced as exc:
        raise invalid_field([exc.field], str(exc)) from None
    except calls_service.Unspeakable as exc:
        raise invalid_field(["name"], str(exc)) from None
    except caller_ids.CallerIdNotAllowed as exc:
        raise invalid_field([campaign_field], f"campaign {campaign.name!r}: {exc}") from None
    return CallAccepted(
        callId=call.id, status=call.status, phoneNumber=call.to_number, campaign=campaign.name
    )


@router.post(
    "/make_toingg/",
    response_model=CallAccepted,
    summary="Place one call",
    dependencies=[Idempotent],
)
@router.post(
    "/make_toingg",
    response_model=CallAccepted,
    include_in_schema=False,
    dependencies=[Idempotent],
)
def make_toingg(
    body: MakeCallRequest, session: SessionDep, account: CurrentAccount
) -> CallAccepted:
    return _place(session, account, body)


class _OneOf:
    """A body read as any JSON object and documented as one of some models: the route picks the
    model and validates, so its errors name the fields as the models' own routes do."""

    def __init__(self, *models: type) -> None:
        self.models = models

    def __get_pydantic_core_schema__(
        self, _source: Any, _handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.dict_schema(core_schema.str_schema(), core_schema.any_schema())

    def __get_pydantic_json_schema__(
        self, _schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"oneOf": [handler(TypeAdapter(model).core_schema) for model in self.models]}


@router.post(
    "/make/toingg",
    response_model=CallAccepted | BatchAccepted,
    summary="Place one call, or a batch when the body has numberList",
    dependencies=[Idempotent],
)
def make_toingg_alias(
    payload: Annotated[dict[str, Any], _OneOf(MakeCallRequest, BatchRequest), Body()],
    session: SessionDep,
    account: CurrentAccount,
) -> CallAccepted | BatchAccepted:
    model = BatchRequest if "numberList" in payload else MakeCallRequest
    try:
        body = model.model_validate(payload)
    except ValidationError as exc:
        raise from_validation_error(exc) from None
    if isinstance(body, BatchRequest):
        return accept_batch(session, account, body)
    return _place(session, account, body)


@router.post(
    "/make_toingg_details",
    response_model=CallAccepted,
    summary="Call with a script",
    dependencies=[Idempotent],
)
def make_toingg_details(
    body: MakeCallDetailsRequest, session: SessionDep, account: CurrentAccount
) -> CallAccepted:
    try:  # a bad number must not leave the campaign changed
        to_e164(body.phoneNumber, get_settings().DEFAULT_REGION)
    except InvalidNumber as exc:
        raise invalid_field(["phoneNumber"], str(exc)) from None
    try:
        campaign = campaigns_service.upsert_script(
            session, account.id, body.campaignName, body.campaignScript
        )
    except caller_ids.CallerIdNotAllowed as exc:  # a new campaign, and no caller ID for it
        raise invalid_field(["campaignName"], str(exc)) from None
    return _place(
        session,
        account,
        MakeCallRequest(
            campaign=campaign.name,
            name=body.name,
            phoneNumber=body.phoneNumber,
            timezone=body.timezone,
            startAt=body.startAt,
            notAfter=body.notAfter,
            webhook=body.webhook,
        ),
        campaign_field="campaignName",
    )


@router.post("/hang_up_call", response_model=HangUpResult, summary="Hang up a call")
def hang_up_call(
    callSid: Annotated[Line, Query(description="Twilio's call SID, or the call id")],
    session: SessionDep,
    account: CurrentAccount,
) -> HangUpResult:
    try:
        call = calls_service.request_hang_up(session, account.id, callSid)
    except calls_service.CallNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"call {callSid!r} not found") from None
    return HangUpResult(
        callId=call.id,
        callSid=call.twilio_sid,
        status=call.status,
        hangupRequested=call.hangup_requested,
    )


@router.get("/calls/{call_ref}", response_model=CallOut, summary="A call, by id or call SID")
def get_call(call_ref: Line, session: SessionDep, account: CurrentAccount) -> CallOut:
    try:
        call = calls_service.get_for_account(session, account.id, call_ref)
    except calls_service.CallNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"call {call_ref!r} not found") from None
    return call_views.out(session, call)


@router.get("/calls", response_model=CallPage, summary="The account's calls, newest first")
def list_calls(
    session: SessionDep,
    account: CurrentAccount,
    campaign: Annotated[Line | None, Query(description="campaign name")] = None,
    status_: Annotated[
        str | None, Query(alias="status", pattern="^(" + "|".join(call_status.ALL) + ")$")
    ] = None,
    batch: Annotated[Line | None, Query(description="batch id")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> CallPage:
    campaign_id = _campaign(session, account, campaign).id if campaign is not None else None
    calls, total = calls_repository.list_page(
        session,
        account.id,
        campaign_id=campaign_id,
        status=status_,
        batch_id=batch,
        limit=limit,
        offset=offset,
    )
    items = [
        CallSummary(
            id=c.id,
            callSid=c.twilio_sid,
            status=c.status,
            campaignId=c.campaign_id,
            batchId=c.batch_id,
            name=c.name,
            phoneNumber=c.to_number,
            durationSeconds=c.duration_seconds,
            createdAt=c.created_at,
            dialedAt=c.dialed_at,
        )
        for c in calls
    ]
    return CallPage(items=items, total=total, limit=limit, offset=offset)
