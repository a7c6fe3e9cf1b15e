"""Liveness and readiness."""

from fastapi import APIRouter, status
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.routing import ApiRoute
from shared.db import get_engine
from shared.redis_client import get_redis

router = APIRouter(tags=["health"], route_class=ApiRoute)


@router.get("/health", summary="Answers while the process lives")
def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", summary="200 only when the database and Redis answer")
def ready() -> JSONResponse:
    problems: dict[str, str] = {}
    try:
        with get_engine().connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means not ready; the message says which
        problems["database"] = f"unreachable: {type(exc).__name__}: {exc}"
    try:
        get_redis().ping()
    except Exception as exc:
        problems["redis"] = f"unreachable: {type(exc).__name__}: {exc}"
    if problems:
        detail = "; ".join(f"{name} {problem}" for name, problem in problems.items())
        return JSONResponse(
            {"status": "not ready", "detail": detail}, status.HTTP_503_SERVICE_UNAVAILABLE
        )
    return JSONResponse({"status": "ready", "database": "ok", "redis": "ok"})
