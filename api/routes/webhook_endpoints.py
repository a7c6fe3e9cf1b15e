"""The account's webhook endpoints: where its events are delivered, signed as the Standard
Webhooks specification says."""

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response, status
from fastapi.exceptions import RequestValidationError
from sqlalchemy.orm import Session

from api.deps import CurrentAccount, SessionDep
from api.errors import invalid_field
from api.paging import Limit, Offset
from api.routing import ApiRoute
from shared.events import repository as events_repository
from shared.models import Account, WebhookEndpoint
from shared.schemas import Line, Moment
from shared.webhooks import addresses, delivery, endpoints, patterns, per_call
from shared.webhooks.schemas import (
    AccountSecretRotated,
    DeliveryOut,
    DeliveryPage,
    EndpointCreate,
    EndpointCreated,
    EndpointList,
    EndpointOut,
    EndpointUpdate,
    Queued,
    SecretRotated,
)

router = APIRouter(tags=["webhooks"], route_class=ApiRoute)
PREFIX = "/webhook-endpoints"


def _get(
    session: Session, account: Account, endpoint_id: str, *, for_update: bool = False
) -> WebhookEndpoint:
    try:
        return endpoints.get(session, account.id, endpoint_id, for_update=for_update)
    except endpoints.EndpointNotFound:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"webhook endpoint {endpoint_id!r} not found"
        ) from None


def _refused(exc: Exception) -> Exception:
    if isinstance(exc, endpoints.PerCall):
        field = exc.field
    else:
        field = "url" if isinstance(exc, addresses.RefusedUrl) else "events"
    return invalid_field([field], str(exc))


@router.post(
    PREFIX,
    response_model=EndpointCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Add an endpoint (its signing secret is shown this once)",
)
def create_endpoint(
    body: EndpointCreate, session: SessionDep, account: CurrentAccount
) -> EndpointCreated:
    try:
        endpoint = endpoints.create(session, account.id, body)
    except (addresses.RefusedUrl, patterns.InvalidPattern) as exc:
        raise _refused(exc) from None
    except endpoints.TooManyEndpoints as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return EndpointCreated.model_validate(endpoint)


@router.get(PREFIX, response_model=EndpointList, summary="The account's endpoints")
def list_endpoints(
    session: SessionDep,
    account: CurrentAccount,
    per_call: Annotated[
        bool,
        Query(
            alias="perCall",
            description="true: the endpoints of calls' and batches' `webhook` URLs instead",
        ),
    ] = False,
    limit: Limit = 50,
    offset: Offset = 0,
) -> EndpointList:
    items, total = endpoints.page(
        session, account.id, per_call=per_call, limit=limit, offset=offset
    )
    return EndpointList(
        items=[EndpointOut.model_validate(e) for e in items],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.get(PREFIX + "/{endpoint_id}", response_model=EndpointOut)
def get_endpoint(endpoint_id: Line, session: SessionDep, account: CurrentAccount) -> EndpointOut:
    return EndpointOut.model_validate(_get(session, account, endpoint_id))


@router.patch(PREFIX + "/{endpoint_id}", response_model=EndpointOut)
def update_endpoint(
    endpoint_id: Line, body: EndpointUpdate, session: SessionDep, account: CurrentAccount
) -> EndpointOut:
    endpoint = _get(session, account, endpoint_id, for_update=True)
    try:
        return EndpointOut.model_validate(endpoints.update(session, endpoint, body))
    except (addresses.RefusedUrl, patterns.InvalidPattern, endpoints.PerCall) as exc:
        raise _refused(exc) from None


@router.delete(PREFIX + "/{endpoint_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_endpoint(endpoint_id: Line, session: SessionDep, account: CurrentAccount) -> Response:
    endpoints.delete(session, _get(session, account, endpoint_id, for_update=True))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    PREFIX + "/{endpoint_id}/rotate-secret",
    response_model=SecretRotated,
    summary="A new signing secret; the old one signs beside it for 24 hours",
)
def rotate_secret(endpoint_id: Line, session: SessionDep, account: CurrentAccount) -> SecretRotated:
    try:
        endpoint = endpoints.rotate_secret(
            session, _get(session, account, endpoint_id, for_update=True)
        )
    except endpoints.PerCall as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    assert endpoint.secret is not None and endpoint.previous_secret_expires_at is not None
    return SecretRotated(
        secret=endpoint.secret, previousSecretExpiresAt=endpoint.previous_secret_expires_at
    )


@router.post(
    "/webhook-secret/rotate",
    response_model=AccountSecretRotated,
    summary="A new secret for the webhook URLs of calls and batches; the old one signs beside "
    "it for 24 hours",
)
def rotate_account_secret(session: SessionDep, account: CurrentAccount) -> AccountSecretRotated:
    rotated = per_call.rotate_secret(session, account.id)
    return AccountSecretRotated(
        secret=rotated.secret, previousSecretExpiresAt=rotated.previous_expires_at
    )


@router.get(
    PREFIX + "/{endpoint_id}/deliveries",
    response_model=DeliveryPage,
    summary="The endpoint's deliveries, newest first, each with every attempt",
)
def list_deliveries(
    endpoint_id: Line,
    session: SessionDep,
    account: CurrentAccount,
    limit: Limit = 50,
    offset: Offset = 0,
) -> DeliveryPage:
    items, total = delivery.page(session, _get(session, account, endpoint_id), limit, offset)
    return DeliveryPage(
        items=[DeliveryOut.model_validate(d) for d in items],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.post(
    PREFIX + "/{endpoint_id}/replay",
    response_model=Queued,
    summary="Send the endpoint again every event it subscribes to since a time",
)
def replay(
    endpoint_id: Line,
    since: Annotated[Moment, Query(description="with its offset: 2026-01-01T12:00:00Z")],
    session: SessionDep,
    account: CurrentAccount,
) -> Queued:
    endpoint = _get(session, account, endpoint_id)
    if not endpoint.enabled:
        raise HTTPException(
            status.HTTP_409_CONFLICT, "the endpoint is disabled: enable it first (PATCH)"
        )
    try:
        return Queued(deliveries=delivery.replay(session, endpoint, since))
    except delivery.ReplayTooLarge as exc:
        raise _query_problem("since", str(exc)) from None


@router.post(
    "/events/{event_id}/resend",
    response_model=Queued,
    summary="Send an event again to every enabled endpoint it matches",
)
def resend(event_id: Line, session: SessionDep, account: CurrentAccount) -> Queued:
    event = events_repository.get_for_account(session, account.id, event_id)
    if event is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"event {event_id!r} not found")
    return Queued(deliveries=delivery.resend(session, event))


def _query_problem(name: str, message: str) -> RequestValidationError:
    return RequestValidationError(
        [{"loc": ("query", name), "msg": message, "type": "value_error", "input": None}]
    )
