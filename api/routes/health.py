"""Liveness and readiness."""

import logging

import sqlalchemy.exc
from fastapi import APIRouter, status
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.routing import ApiRoute
from shared import migrate
from shared.db import get_engine
from shared.redis_client import get_redis

router = APIRouter(tags=["health"], route_class=ApiRoute)

log = logging.getLogger(__name__)


@router.get("/health", summary="Answers while the process lives")
def health() -> dict[str, str]:
    return {"status": "ok"}


def _database_problem() -> str | None:
    """Why the database cannot serve this code, or None: unreachable, or not at the migrations'
    head (an API on tables it does not know answers 500 to every request)."""
    needs = ", ".join(sorted(migrate.head_revisions()))
    try:
        with get_engine().connect() as connection:
            try:
                at = set(
                    connection.execute(text("SELECT version_num FROM alembic_version")).scalars()
                )
            except sqlalchemy.exc.ProgrammingError:
                return f"database not migrated: no revision, needs {needs}"
    except Exception:
        log.warning("not ready: the database is unreachable", exc_info=True)
        return "database unreachable"
    if at != migrate.head_revisions():
        current = ", ".join(sorted(at)) or "no revision"
        return f"database not migrated: at {current}, needs {needs}"
    return None


@router.get(
    "/ready", summary="200 only when the database is at the migrations' head and Redis answers"
)
def ready() -> JSONResponse:
    # Any failure means not ready. The answer names what is wrong; why (the exception's text,
    # which names hosts and users) is only in the server's log.
    problems: list[str] = []
    database = _database_problem()
    if database is not None:
        problems.append(database)
    try:
        get_redis().ping()
    except Exception:
        log.warning("not ready: Redis is unreachable", exc_info=True)
        problems.append("redis unreachable")
    if problems:
        return JSONResponse(
            {"status": "not ready", "detail": "; ".join(problems)},
            status.HTTP_503_SERVICE_UNAVAILABLE,
        )
    return JSONResponse({"status": "ready", "database": "ok", "redis": "ok"})
