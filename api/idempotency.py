"""The Idempotency-Key header on the routes that create something (the rules are in
shared.idempotency.service): one dependency reserves the key before the work, one route class
stores the answer in the work's own transaction."""

import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, HTTPException, Request, Response, params, status
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.deps import SessionDep, current_account
from api.errors import invalid_header
from api.routing import ApiRoute
from shared.idempotency import service
from shared.models import Account
from shared.schemas import text_problem

HEADER = "Idempotency-Key"
_STATE = "idempotency"
# Names the refusal of a keyed request (a uuid5 in this namespace), the same for its retries.
_REFUSALS = uuid.UUID("3f0c8f52-5d7e-4c55-9a4e-6b1f1e2d7a10")


class _Replay(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


@dataclass(frozen=True)
class Taken:
    """A key this request's transaction holds, waiting for the answer."""

    session: Session
    row_id: str
    request: service.Fingerprint

    def remember(self, response: Response) -> None:
        body = bytes(response.body).decode()
        service.remember(self.session, self.row_id, self.request, response.status_code, body)

    def refusal_subject(self) -> str:
        """The subject of this request's refusal: the key's, and the request's (a key freed by
        a refusal may be sent again with another body, which is another request)."""
        request = self.request
        name = f"{self.row_id} {request.method} {request.path} {request.body_hash}"
        return str(uuid.uuid5(_REFUSALS, name))


def held(session: Session) -> Taken | None:
    """The key the request of `session` holds, if it was sent with one."""
    taken = session.info.get(_STATE)
    return taken if isinstance(taken, Taken) else None


class IdempotentRoute(ApiRoute):
    """A route whose answer can be remembered. FastAPI closes function-scoped dependencies (the
    request's session, which commits) only after the route's handler has built the response,
    so the answer is stored here, in the same transaction as the work it answers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                response = await handler(request)
            except _Replay as replay:
                return replay.response
            taken: Taken | None = getattr(request.state, _STATE, None)
            if taken is not None:
                await run_in_threadpool(taken.remember, response)
            return response

        return handle


async def _raw_body(request: Request) -> bytes:
    return await request.body()  # already read (and cached) for the route's body


def _problem(key: str) -> str | None:
    if not key:
        return "must not be empty"
    if len(key) > service.MAX_KEY_LENGTH:
        return f"must be at most {service.MAX_KEY_LENGTH} characters (it has {len(key)})"
    return text_problem(key)


def idempotent(account: Callable[..., Account]) -> params.Depends:
    """The dependency for a route whose caller's account comes from `account`."""

    def idempotency_key(
        request: Request,
        response: Response,
        session: SessionDep,
        caller: Annotated[Account, Depends(account)],
        body: Annotated[bytes, Depends(_raw_body)],
        key: Annotated[
            str | None,
            Header(
                alias=HEADER,
                description="Retry safely: a repeat with this key (up to 255 characters, "
                "kept 24 hours) answers the first answer and does nothing else",
            ),
        ] = None,
    ) -> None:
        if key is None:
            return
        problem = _problem(key)
        if problem is not None:
            raise invalid_header(HEADER, f"{HEADER} {problem}")
        if not isinstance(request.scope.get("route"), IdempotentRoute):
            raise RuntimeError(f"{request.url.path}: {HEADER} needs the IdempotentRoute class")
        request_print = service.fingerprint(request.method, request.url.path, body)
        service.reserve(session, caller.id, key, request_print)
        session.commit()  # a short transaction of its own: a concurrent repeat finds the key
        try:
            taken = service.take(session, caller.id, key, request_print)
        except service.KeyInUse:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"a request with this {HEADER} is still being handled; retry in a moment "
                "for its answer",
                headers={"Retry-After": "1"},
            ) from None
        except service.KeyReused as exc:
            raise invalid_header(
                HEADER,
                f"{HEADER} {key!r} was used for another request ({exc.method} {exc.path} "
                "with another body); use a new key for a new request",
            ) from None
        if isinstance(taken, service.Replay):
            replay = Response(taken.body, taken.status, media_type="application/json")
            replay.headers.update(response.headers)  # this request's own RateLimit-*
            replay.headers["Idempotent-Replayed"] = "true"
            raise _Replay(replay)
        held_key = Taken(session, taken, request_print)
        setattr(request.state, _STATE, held_key)
        session.info[_STATE] = held_key  # for a refusal, which has the session, not the request

    return Depends(idempotency_key)


Idempotent = idempotent(current_account)
"""For routes authenticated by ?apiKey= or a Bearer token."""
