"""Dependencies every route shares: the request's session and the caller's account."""

import ipaddress
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from sqlalchemy.orm import Session

from shared.accounts import service as accounts_service
from shared.db import session_scope
from shared.models import Account
from shared.ratelimit import api as api_limits
from shared.schemas import text_problem

_STATE = "caller"


def get_session() -> Iterator[Session]:
    with session_scope() as session:
        yield session


# scope="function": commit before the response goes out, so a client that reads back what it
# just created always finds it.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


@dataclass(frozen=True)
class Caller:
    """An API key found active and within its bucket: its account and its RateLimit-* fields."""

    account_id: str
    headers: dict[str, str]


def client_address(request: Request) -> str:
    """The client's address as the bad-key limit counts it: an IPv6 client by its /64, the
    least any IPv6 host holds. Behind a proxy named in FORWARDED_ALLOW_IPS, uvicorn has put
    the address of X-Forwarded-For here."""
    host = request.client.host if request.client else "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def _presented_key(api_key: str | None, authorization: str | None) -> str:
    if api_key is not None:
        where, secret = ("query", "apiKey"), api_key
    elif authorization and authorization.lower().startswith("bearer "):
        where, secret = ("header", "Authorization"), authorization[7:].strip()
    else:
        where, secret = ("query", "apiKey"), ""
    if not secret:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing API key: pass ?apiKey=... or an Authorization: Bearer header",
            headers={"WWW-Authenticate": "Bearer"},
        )
    problem = text_problem(secret)
    if problem is not None:
        raise RequestValidationError(
            [{"loc": where, "msg": f"the API key {problem}", "type": "value_error"}]
        )
    return secret


def authenticate(session: Session, secret: str, client: str) -> Caller:
    """The key's account, once its key has a token in its leaky bucket; 401 or 429 otherwise,
    before the request has any effect. A key not seen valid in the last day is looked up only
    with a token of its client address's bucket (429 without one), so random keys cannot drive
    database reads without bound; a key seen valid lately is always looked up, so a customer is
    not refused for the unknown keys sent from its address, which behind a proxy may be
    everyone's."""
    key_hash = accounts_service.hash_key(secret)
    known = api_limits.known_key(key_hash)
    if not known:
        refusal = api_limits.take_unknown_key(client)
        if not refusal.allowed:
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                "too many unknown API keys from this address; "
                f"retry in {refusal.wait_seconds:.2f} s",
                headers={"Retry-After": str(max(1, math.ceil(refusal.wait_seconds)))},
            )
    api_key = accounts_service.active_key(session, secret)
    account = None if api_key is None else session.get(Account, api_key.account_id)
    if api_key is None or account is None:
        if known:
            api_limits.forget_key(key_hash)
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "unknown or revoked API key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not known:
        api_limits.remember_key(key_hash)
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
    return Caller(account.id, headers)


def authenticate_request(request: Request) -> None:
    """The key of the query or the Authorization header, checked before the body is read (see
    api.routing): an unauthenticated request costs no body read and no parse."""
    secret = _presented_key(
        request.query_params.get("apiKey"), request.headers.get("authorization")
    )
    with session_scope() as session:
        caller = authenticate(session, secret, client_address(request))
    setattr(request.state, _STATE, caller)


def caller_account(session: Session, caller: Caller, response: Response) -> Account:
    account = session.get(Account, caller.account_id)
    if account is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "unknown or revoked API key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    response.headers.update(caller.headers)
    return account


def current_account(
    request: Request,
    session: SessionDep,
    response: Response,
    apiKey: Annotated[
        str | None, Query(description="API key, as the seeds send it; or use a Bearer token")
    ] = None,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Account:
    caller: Caller | None = getattr(request.state, _STATE, None)
    if caller is None:  # a route that did not check the key first: checked now, the same way
        secret = _presented_key(apiKey, authorization)
        caller = authenticate(session, secret, client_address(request))
    return caller_account(session, caller, response)


CurrentAccount = Annotated[Account, Depends(current_account)]
