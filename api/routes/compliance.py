"""Why a call was placed when it was, or not at all."""

from fastapi import APIRouter, HTTPException, status

from api.deps import CurrentAccount, SessionDep
from api.routing import ApiRoute
from shared.calls import service as calls_service
from shared.compliance import service as compliance
from shared.compliance.schemas import CallExplanation
from shared.schemas import Line

router = APIRouter(tags=["compliance"], route_class=ApiRoute)


@router.get(
    "/compliance/calls/{call_ref}",
    response_model=CallExplanation,
    summary="Why a call was placed when it was, or not at all",
)
def explain_call(call_ref: Line, session: SessionDep, account: CurrentAccount) -> CallExplanation:
    try:
        return compliance.explain_call(session, account.id, call_ref)
    except calls_service.CallNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"call {call_ref!r} not found") from None
