"""The route class of every API route: what is checked before FastAPI reads a request's body
(whose size api.body_limit has capped already).

FastAPI reads and parses a route's body before it solves its dependencies, so an API key
checked by a dependency alone would be checked only after an unauthenticated body was read.
Here, in this order: a route that takes the caller's key from the query or a header checks it
(401, 429); a JSON body sent as anything else is refused (415); a JSON body of more values than
MAX_JSON_VALUES is refused before it is parsed (422); a JSON body is read by api.strict_json,
which refuses a repeated key and a number no double holds (400); a body that cannot be parsed at
all is refused naming why (400).
"""

import email.message
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response, params, status
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from api import strict_json
from api.deps import authenticate_request, current_account
from shared.batches.schemas import MAX_BATCH_SIZE


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


# Parsed, every JSON value costs tens of bytes or more (a Python object; as much in pydantic's
# own parser): a 32 MiB batch body of "{}," rows grew the API by 1.6 GiB. A batch's 100,000 rows
# need about 300,000 values; this leaves room for extra fields, and for commas in names.
MAX_JSON_VALUES = 1_000_000


def too_many_values(body: bytes) -> bool:
    """Counted without parsing, as commas and opening brackets (every value but a container's
    first follows a comma), in strings too: a count of 32 MiB takes milliseconds."""
    return body.count(b",") + body.count(b"[") + body.count(b"{") > MAX_JSON_VALUES


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
            if json_body and too_many_values(await request.body()):  # read once, kept
                raise RequestValidationError(
                    [
                        {
                            "loc": ("body",),
                            "msg": f"the JSON body holds more than {MAX_JSON_VALUES:,} values"
                            " (counted as its commas and opening brackets, in strings too);"
                            f" a batch's {MAX_BATCH_SIZE:,} rows need about"
                            f" {3 * MAX_BATCH_SIZE:,}",
                            "type": "value_error",
                            "input": None,
                        }
                    ]
                )
            if json_body and content_type and _is_json(content_type):
                body = await request.body()
                if body:
                    try:
                        # Starlette's Request.json() answers what it holds here: FastAPI
                        # validates this reading of the body instead of one of its own.
                        request._json = strict_json.loads(body)
                    except strict_json.Refused as exc:
                        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
                    except (ValueError, RecursionError):
                        pass  # FastAPI reads it again, and refuses it as it does (below)
            try:
                return await handler(request)
            except StarletteHTTPException as exc:  # what FastAPI raises when a body is unreadable
                problem = _unreadable(exc.__cause__) if exc.status_code == 400 else None
                if problem is None:
                    raise
                raise HTTPException(status.HTTP_400_BAD_REQUEST, problem) from None

        return handle
