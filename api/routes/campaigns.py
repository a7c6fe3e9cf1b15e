"""Campaigns: create, read, update, delete."""

from fastapi import APIRouter, HTTPException, Response, status
from sqlalchemy.orm import Session

from api.deps import CurrentAccount, SessionDep
from api.errors import invalid_field
from api.paging import Limit, Offset
from api.routing import ApiRoute
from shared.caller_ids import service as caller_ids
from shared.campaigns import repository as campaigns_repository
from shared.campaigns import service as campaigns_service
from shared.campaigns.schemas import CampaignCreate, CampaignOut, CampaignPage, CampaignUpdate
from shared.models import Account, Campaign
from shared.schemas import Line
from shared.telephony.numbers import InvalidNumber

router = APIRouter(prefix="/campaigns", tags=["campaigns"], route_class=ApiRoute)


def _get(session: Session, account: Account, campaign_id: str) -> Campaign:
    try:
        return campaigns_service.get(session, account.id, campaign_id)
    except campaigns_service.CampaignNotFound:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"campaign {campaign_id!r} not found"
        ) from None


def _taken(name: str) -> HTTPException:
    return HTTPException(status.HTTP_409_CONFLICT, f"a campaign named {name!r} exists already")


@router.post("", response_model=CampaignOut, status_code=status.HTTP_201_CREATED)
def create_campaign(body: CampaignCreate, session: SessionDep, account: CurrentAccount) -> Campaign:
    try:
        return campaigns_service.create(session, account.id, body)
    except campaigns_service.CampaignNameTaken:
        raise _taken(body.name) from None
    except (InvalidNumber, caller_ids.CallerIdNotAllowed) as exc:
        raise invalid_field(["callerId"], str(exc)) from None


@router.get("", response_model=CampaignPage)
def list_campaigns(
    session: SessionDep,
    account: CurrentAccount,
    limit: Limit = 50,
    offset: Offset = 0,
) -> CampaignPage:
    items = campaigns_repository.list_page(session, account.id, limit, offset)
    return CampaignPage(
        items=[CampaignOut.model_validate(c) for c in items],
        total=campaigns_repository.count(session, account.id),
        limit=limit,
        offset=offset,
    )


@router.get("/{campaign_id}", response_model=CampaignOut)
def get_campaign(campaign_id: Line, session: SessionDep, account: CurrentAccount) -> Campaign:
    return _get(session, account, campaign_id)


@router.patch("/{campaign_id}", response_model=CampaignOut)
def update_campaign(
    campaign_id: Line, body: CampaignUpdate, session: SessionDep, account: CurrentAccount
) -> Campaign:
    campaign = _get(session, account, campaign_id)
    try:
        return campaigns_service.update(session, campaign, body)
    except campaigns_service.CampaignNameTaken:
        raise _taken(body.name or "") from None
    except (InvalidNumber, caller_ids.CallerIdNotAllowed) as exc:
        raise invalid_field(["callerId"], str(exc)) from None


@router.delete("/{campaign_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_campaign(campaign_id: Line, session: SessionDep, account: CurrentAccount) -> Response:
    campaign = _get(session, account, campaign_id)
    try:
        campaigns_service.delete(session, campaign)
    except campaigns_service.CampaignInUse:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"campaign {campaign.name!r} has calls; its history keeps it",
        ) from None
    except campaigns_service.CampaignNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "campaign not found") from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)
