"""The route class of every API route: what is checked before FastAPI reads a request's body
(whose size api.body_limit has capped already).

FastAPI reads and parses a route's body before it solves its dependencies, so an API key
checked by a dependency alone would be checked only after an unauthenticated body was read.
Here, in this order: a route that takes the caller's key from the query or a header checks it
(401, 429); a JSON body sent as anything else is refused (415); a body FastAPI cannot parse is
refused naming why (400).
"""

import email.message
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response, params, status
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.deps import authenticate_request, current_account


def _uses(dependant: Dependant, call: Callable[..., Any]) -> bool:
    return dependant.call is call or any(_uses(d, call) for d in dependant.dependencies)


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    return "transfer-encoding" in request.headers or (length is not None and length != "0")


def _is_json(content_type: str) -> bool:
    # The same test FastAPI applies before it parses a body as JSON.
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


def _unreadable(cause: BaseException | None) -> str | None:
    """What made FastAPI's "There was an error parsing the body" (a JSONDecodeError has its
    own 422)."""
    if isinstance(cause, RecursionError):
        return "the JSON body is nested too deeply"
    if isinstance(cause, UnicodeDecodeError):
        return "the body is not UTF-8 text"
    if isinstance(cause, ValueError):  # Python reads no integer of more than 4,300 digits
        return "the JSON body holds a number with too many digits"
    return None


class ApiRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        keyed = _uses(self.dependant, current_account)
        json_body = self.body_field is not None and not isinstance(
            self.body_field.field_info, params.Form
        )

        async def handle(request: Request) -> Response:
            if keyed:
                await run_in_threadpool(authenticate_request, request)
            # A body without a Content-Type is FastAPI's own 422 (the body is not an object).
            content_type = request.headers.get("content-type")
            if json_body and content_type and not _is_json(content_type) and _has_body(request):
                raise HTTPException(
                    status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                    f"send the body as JSON, with Content-Type: application/json, not "
                    f"{content_type!r}",
                )
            try:
                return await handler(request)
            except StarletteHTTPException as exc:  # what FastAPI raises when a body is unreadable
                problem = _unreadable(exc.__cause__) if exc.status_code == 400 else None
                if problem is None:
                    raise
                raise HTTPException(status.HTTP_400_BAD_REQUEST, problem) from None

        return handle
