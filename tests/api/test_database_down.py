"""The API with its database down, as `toingg api` runs it: requests get 503 with Retry-After,
never a 500, and the process stays alive and says what is wrong."""

import os
from collections.abc import Iterator

import httpx
import pytest

from shared.embedded_redis import free_port
from tests.stack import ServerProcess

BODY = {"campaign": "welcome", "name": "A", "phoneNumber": "+14155552671"}


@pytest.fixture(scope="module")
def api_without_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    closed = free_port()  # nothing listens there
    url = f"http://127.0.0.1:{port}"
    server = ServerProcess(
        ["api", "--host", "127.0.0.1", "--port", str(port)],
        f"{url}/api/health",
        tmp_path_factory.mktemp("api") / "api.log",
        env={**os.environ, "DATABASE_URL": f"postgresql+psycopg://nobody@127.0.0.1:{closed}/x"},
    )
    server.start()
    yield url
    server.stop()


class TestDatabaseDown:
    def test_requests_get_503_with_retry_after(self, api_without_database: str) -> None:
        with httpx.Client(base_url=api_without_database, timeout=30) as http:
            placed = http.post("/api/make_toingg/", json=BODY, params={"apiKey": "tg_x"})
            read = http.get("/api/calls", params={"apiKey": "tg_x"})
            for response in (placed, read):
                assert response.status_code == 503
                assert response.headers["Retry-After"] == "1"
                assert response.json() == {"detail": "the database is unavailable; retry shortly"}
            assert http.get("/api/health").status_code == 200
            ready = http.get("/api/ready")
            assert ready.status_code == 503
            # What is down, not why: the exception's text names hosts and users.
            assert ready.json() == {"status": "not ready", "detail": "database unreachable"}
