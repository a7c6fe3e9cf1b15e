"""The FastAPI app: parse, authorize, call a service, enqueue by name."""

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
import redis
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response

from api.body_limit import BodyLimit
from api.routes import api_router
from shared import migrate
from shared.config import get_settings, settings_or_exit
from shared.db import UNAVAILABLE

# Requests served at once (uvicorn --limit-concurrency); more are answered 503 at once.
MAX_CONCURRENT_REQUESTS = 200
# Every body but a batch's: a campaign's script, an SMS, a checkout, Twilio's and Stripe's
# webhooks (these can only authenticate from their body, so it is kept small).
SMALL_BODY_BYTES = 64 * 1024
# A batch of 100,000 rows, each row's name and number as long as a row usually has and more.
BATCH_BODY_BYTES = 32 * 1024 * 1024
BATCH_PATHS = ("/api/make_batch_toingg", "/api/make/toingg")
# A do-not-contact import of 100,000 rows, as JSON or as a CSV upload: about 6 MiB at most as
# usually written, kept at a batch's limit for long reasons.
DNC_IMPORT_PATH = "/api/dnc/import"


@asynccontextmanager
async def _lifespan(_app: FastAPI) -> AsyncIterator[None]:
    # A request hops between threads (dependencies, endpoint, the commit on exit) while its
    # transaction holds locks. With more threads than requests, the lock holder always finds a
    # thread for its next hop, so requests waiting on its lock cannot starve it.
    anyio.to_thread.current_default_thread_limiter().total_tokens = 2 * MAX_CONCURRENT_REQUESTS
    migrate.head_revisions()  # read once here, so the readiness poll reads only the database
    yield


def create_app() -> FastAPI:
    # Served without `toingg api` (`uvicorn api.main:create_app --factory`), the settings are
    # checked here as `toingg` checks them: an API on settings it cannot run on does not start.
    settings_or_exit("toingg api")
    app = FastAPI(
        lifespan=_lifespan,
        title="Toingg API",
        description="Automated phone calls and SMS, paid in credits.",
        version="0.1.0",
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.include_router(api_router)
    app.add_middleware(
        BodyLimit,
        default=SMALL_BODY_BYTES,
        by_path=dict.fromkeys((*BATCH_PATHS, DNC_IMPORT_PATH), BATCH_BODY_BYTES),
        seconds=lambda: get_settings().REQUEST_BODY_SECONDS,
    )

    @app.exception_handler(redis.exceptions.ConnectionError)
    async def redis_unreachable(_request: Request, _exc: Exception) -> JSONResponse:
        # Nothing was accepted: the client may retry. (Work already committed is not lost:
        # the sweeper hands out whatever the database still owes.) The details stay in the
        # server's log.
        return JSONResponse(
            {"detail": "Redis is unreachable; retry shortly"},
            status_code=503,
            headers={"Retry-After": "1"},
        )

    async def database_unavailable(_request: Request, _exc: Exception) -> JSONResponse:
        # Down, out of connections, or locked past the timeout: the transaction rolled back,
        # and the client may retry (the details stay in the server's log).
        return JSONResponse(
            {"detail": "the database is unavailable; retry shortly"},
            status_code=503,
            headers={"Retry-After": "1"},
        )

    for unavailable in UNAVAILABLE:
        app.add_exception_handler(unavailable, database_unavailable)

    @app.exception_handler(Exception)
    async def internal_error(_request: Request, _exc: Exception) -> JSONResponse:
        # Whatever failed, the answer says no more than that; the exception goes on to the
        # server, which logs its trace.
        return JSONResponse({"detail": "internal error"}, status_code=500)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> Response:
        # FastAPI's own 422, except that the input it echoes may be bytes that are not UTF-8
        # or text with a lone surrogate (valid JSON, not encodable as UTF-8): those are shown
        # replaced or escaped instead of failing the answer with a 500.
        detail = jsonable_encoder(
            exc.errors(), custom_encoder={bytes: lambda raw: raw.decode("utf-8", "replace")}
        )
        return Response(
            json.dumps({"detail": detail}, ensure_ascii=True, separators=(",", ":")),
            status_code=422,
            media_type="application/json",
        )

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/api/docs")

    return app
