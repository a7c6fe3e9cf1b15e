"""Readiness means the database is at the migrations' head: an API on an empty or older schema
answers 500 to every request, so a load balancer must not send it traffic."""

import os
from collections.abc import Iterator

import httpx
import pytest
from alembic import command
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from shared import migrate
from shared.embedded_redis import free_port
from tests.stack import ServerProcess


@pytest.fixture(scope="module")
def empty_database() -> Iterator[str]:
    base = make_url(os.environ["DATABASE_URL"])
    name = f"{base.database}_unmigrated"
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield base.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="module")
def api_on_empty_database(
    empty_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = ServerProcess(
        ["api", "--host", "127.0.0.1", "--port", str(port)],
        f"{url}/api/health",
        tmp_path_factory.mktemp("api") / "api.log",
        env={**os.environ, "DATABASE_URL": empty_database},
    )
    server.start()
    yield url
    server.stop()


def test_ready_only_at_the_migrations_head(api_on_empty_database: str, empty_database: str) -> None:
    [head] = migrate.head_revisions()
    with httpx.Client(base_url=api_on_empty_database, timeout=30) as http:
        empty = http.get("/api/ready")
        assert empty.status_code == 503
        assert empty.json() == {
            "status": "not ready",
            "detail": f"database not migrated: no revision, needs {head}",
        }

        behind = f"{int(head) - 1:04d}"
        command.upgrade(migrate.alembic_config(empty_database), behind)
        older = http.get("/api/ready")
        assert older.status_code == 503
        assert older.json()["detail"] == f"database not migrated: at {behind}, needs {head}"

        migrate.upgrade(empty_database)
        ready = http.get("/api/ready")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ready", "database": "ok", "redis": "ok"}
