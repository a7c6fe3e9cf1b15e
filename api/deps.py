"""Dependencies every route shares: the request's session and the caller's account."""

import math
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Query, Response, status
from sqlalchemy.orm import Session

from shared.accounts import service as accounts_service
from shared.db import session_scope
from shared.models import Account
from shared.ratelimit import api as api_limits


def get_session() -> Iterator[Session]:
    with session_scope() as session:
        yield session


# scope="function": commit before the response goes out, so a client that reads back what it
# just created always finds it.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def current_account(
    session: SessionDep,
    response: Response,
    apiKey: Annotated[
        str | None, Query(description="API key, as the seeds send it; or use a Bearer token")
    ] = None,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Account:
    secret = apiKey
    if secret is None and authorization and authorization.lower().startswith("bearer "):
        secret = authorization[7:].strip()
    if not secret:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing API key: pass ?apiKey=... or an Authorization: Bearer header",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return limited_account(session, secret, response)


def limited_account(session: Session, secret: str, response: Response) -> Account:
    """The key's account, once its key has a token in its leaky bucket; 401 or 429 otherwise,
    before the request has any effect."""
    api_key = accounts_service.active_key(session, secret)
    account = None if api_key is None else session.get(Account, api_key.account_id)
    if api_key is None or account is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "unknown or revoked API key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    decision = api_limits.take(api_key, account)
    headers = api_limits.headers(account, decision)
    if not decision.allowed:
        rate, burst = api_limits.limits(account)
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"rate limit: {rate:g} requests/s with a burst of {burst}; "
            f"retry in {decision.wait_seconds:.2f} s",
            headers={**headers, "Retry-After": str(max(1, math.ceil(decision.wait_seconds)))},
        )
    response.headers.update(headers)
    return account


CurrentAccount = Annotated[Account, Depends(current_account)]
