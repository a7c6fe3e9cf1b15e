"""The caller IDs the account may call and text from (an operator adds and removes them)."""

from fastapi import APIRouter

from api.deps import CurrentAccount, SessionDep
from api.routing import ApiRoute
from shared.caller_ids import service as caller_ids
from shared.caller_ids.schemas import CallerIdList, CallerIdOut

router = APIRouter(tags=["caller IDs"], route_class=ApiRoute)


@router.get("/caller-ids", response_model=CallerIdList, summary="The account's caller IDs")
def list_caller_ids(session: SessionDep, account: CurrentAccount) -> CallerIdList:
    return CallerIdList(
        items=[
            CallerIdOut.model_validate(row) for row in caller_ids.of_account(session, account.id)
        ],
        platformNumber=caller_ids.platform_number(),
        default=caller_ids.default(session, account.id),
    )
