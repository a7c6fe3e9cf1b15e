"""Every request body capped while it streams in, before anything reads it: a pure ASGI
middleware, so a route, a dependency or a webhook's signature check never holds more.

The bytes are counted as they arrive: a Content-Length over the limit is refused before a byte
is read, and a body without one (chunked) or longer than it said is cut at the limit. Over it
the answer is 413, naming the limit, in the API's {"detail": ...} shape.

A body must also arrive whole within REQUEST_BODY_SECONDS of the request: one that trickles in
or never ends would otherwise hold one of the server's connections (uvicorn's
--limit-concurrency) for as long as its sender likes. Late, the answer is 408 and the
connection is closed.

An answer that goes out before its request's body was read whole (401 without a key, 413, 408)
closes the connection: the server would otherwise go on reading the rest of the body, to find
the next request after it, for as long as its sender trickles it in.
"""

import time
from collections.abc import Callable

import anyio
from fastapi import HTTPException, status
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def size_text(size: int) -> str:
    for unit, scale in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit} ({size:,} bytes)"
    return f"{size:,} bytes"


class BodyRefused(HTTPException):
    """Raised from the request's receive: FastAPI passes an HTTPException raised while it reads
    a body on as it is, so the route's own error handling answers it."""


class BodyTooLarge(BodyRefused):
    def __init__(self, limit: int) -> None:
        super().__init__(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"the request body is larger than this route's limit of {size_text(limit)}",
        )


class BodyTooSlow(BodyRefused):
    def __init__(self, seconds: float) -> None:
        # The rest of the body is never read: the connection is closed, freeing its slot.
        super().__init__(
            status.HTTP_408_REQUEST_TIMEOUT,
            f"the request body did not arrive whole within {seconds:g} seconds",
            headers={"Connection": "close"},
        )


class BodyLimit:
    def __init__(
        self, app: ASGIApp, default: int, by_path: dict[str, int], seconds: Callable[[], float]
    ) -> None:
        self.app = app
        self.default = default
        self.by_path = by_path
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.by_path.get(scope["path"], self.default)
        try:
            declared = int(Headers(scope=scope).get("content-length", ""))
        except ValueError:
            declared = None
        if declared is not None and declared > limit:
            await _answer(BodyTooLarge(limit), scope, receive, send)
            return
        has_body = bool(declared) or "transfer-encoding" in Headers(scope=scope)
        received = 0
        started = False
        whole = False
        seconds = self.seconds()
        deadline = time.monotonic() + seconds

        async def capped_receive() -> Message:
            nonlocal received, whole
            if whole:  # only a disconnect is left to wait for, as long as it takes
                return await receive()
            with anyio.move_on_after(deadline - time.monotonic()) as late:
                message = await receive()
            if late.cancelled_caught:
                raise BodyTooSlow(seconds)
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
                whole = not message.get("more_body", False)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if has_body and not whole:
                    message = _closing(message)
            await send(message)

        try:
            await self.app(scope, capped_receive, watched_send)
        except BodyRefused as exc:  # read outside a route's error handling
            if started:
                raise
            await _answer(exc, scope, receive, send)


def _closing(start: Message) -> Message:
    """A response start that tells the server to close the connection after it."""
    headers = list(start.get("headers", []))
    if not any(name.lower() == b"connection" for name, _ in headers):
        headers.append((b"connection", b"close"))
    return {**start, "headers": headers}


async def _answer(exc: BodyRefused, scope: Scope, receive: Receive, send: Send) -> None:
    # The rest of the body is never read: the connection is closed after the answer.
    headers = {**(exc.headers or {}), "Connection": "close"}
    response = JSONResponse({"detail": exc.detail}, exc.status_code, headers=headers)
    await response(scope, receive, send)
