"""The account's webhook endpoints: where its events are delivered, signed as the Standard
Webhooks specification says."""

from fastapi import APIRouter, HTTPException, Response, status
from sqlalchemy.orm import Session

from api.deps import CurrentAccount, SessionDep
from api.errors import invalid_field
from api.routing import ApiRoute
from shared.models import Account, WebhookEndpoint
from shared.schemas import Line
from shared.webhooks import addresses, endpoints, patterns
from shared.webhooks.schemas import (
    EndpointCreate,
    EndpointCreated,
    EndpointList,
    EndpointOut,
    EndpointUpdate,
    SecretRotated,
)

router = APIRouter(prefix="/webhook-endpoints", tags=["webhooks"], route_class=ApiRoute)


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
    field = "url" if isinstance(exc, addresses.RefusedUrl) else "events"
    return invalid_field([field], str(exc))


@router.post(
    "",
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
    return EndpointCreated.model_validate(endpoint)


@router.get("", response_model=EndpointList, summary="The account's endpoints")
def list_endpoints(session: SessionDep, account: CurrentAccount) -> EndpointList:
    return EndpointList(
        items=[EndpointOut.model_validate(e) for e in endpoints.of_account(session, account.id)]
    )


@router.get("/{endpoint_id}", response_model=EndpointOut)
def get_endpoint(endpoint_id: Line, session: SessionDep, account: CurrentAccount) -> EndpointOut:
    return EndpointOut.model_validate(_get(session, account, endpoint_id))


@router.patch("/{endpoint_id}", response_model=EndpointOut)
def update_endpoint(
    endpoint_id: Line, body: EndpointUpdate, session: SessionDep, account: CurrentAccount
) -> EndpointOut:
    endpoint = _get(session, account, endpoint_id, for_update=True)
    try:
        return EndpointOut.model_validate(endpoints.update(session, endpoint, body))
    except (addresses.RefusedUrl, patterns.InvalidPattern) as exc:
        raise _refused(exc) from None


@router.delete("/{endpoint_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_endpoint(endpoint_id: Line, session: SessionDep, account: CurrentAccount) -> Response:
    endpoints.delete(session, _get(session, account, endpoint_id, for_update=True))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{endpoint_id}/rotate-secret",
    response_model=SecretRotated,
    summary="A new signing secret; the old one signs beside it for 24 hours",
)
def rotate_secret(endpoint_id: Line, session: SessionDep, account: CurrentAccount) -> SecretRotated:
    endpoint = endpoints.rotate_secret(
        session, _get(session, account, endpoint_id, for_update=True)
    )
    assert endpoint.previous_secret_expires_at is not None
    return SecretRotated(
        secret=endpoint.secret, previousSecretExpiresAt=endpoint.previous_secret_expires_at
    )
