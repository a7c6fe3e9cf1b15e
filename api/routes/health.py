"""Liveness and readiness."""

import logging

from fastapi import APIRouter, status
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.routing import ApiRoute
from shared.db import get_engine
from shared.redis_client import get_redis

router = APIRouter(tags=["health"], route_class=ApiRoute)

log = logging.getLogger(__name__)


@router.get("/health", summary="Answers while the process lives")
def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", summary="200 only when the database and Redis answer")
def ready() -> JSONResponse:
    # Any failure means not ready. The answer names what is down; why (the exception's text,
    # which names hosts and users) is only in the server's log.
    down: list[str] = []
    try:
        with get_engine().connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception:
        log.warning("not ready: the database is unreachable", exc_info=True)
        down.append("database")
    try:
        get_redis().ping()
    except Exception:
        log.warning("not ready: Redis is unreachable", exc_info=True)
        down.append("redis")
    if down:
        detail = "; ".join(f"{name} unreachable" for name in down)
        return JSONResponse(
            {"status": "not ready", "detail": detail}, status.HTTP_503_SERVICE_UNAVAILABLE
        )
    return JSONResponse({"status": "ready", "database": "ok", "redis": "ok"})
