"""The embedded PostgreSQL that `toingg run` and the tests use when DATABASE_URL is unset."""

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg

from shared import embedded_postgres


def _dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


class TestEmbeddedPostgres:
    def test_starts_keeps_its_data_and_is_found_while_running(self, tmp_path: Path) -> None:
        data_dir = tmp_path / "postgres"
        process, url = embedded_postgres.start(data_dir)
        try:
            assert embedded_postgres.running_url(data_dir) == url
            with psycopg.connect(_dsn(url), autocommit=True) as connection:
                version = connection.execute("SHOW server_version").fetchone()
                connection.execute("CREATE TABLE kept (n int)")
                connection.execute("INSERT INTO kept VALUES (7)")
            assert version is not None and version[0].startswith("18")
        finally:
            embedded_postgres.stop(process)
        assert embedded_postgres.running_url(data_dir) is None

        process, url = embedded_postgres.start(data_dir)  # the same folder, started again
        try:
            with psycopg.connect(_dsn(url)) as connection:
                assert connection.execute("SELECT n FROM kept").fetchall() == [(7,)]
        finally:
            embedded_postgres.stop(process)

    def test_admin_command_starts_it_for_itself_and_stops_it(self, tmp_path: Path) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        created = subprocess.run(
            [sys.executable, "-m", "shared.cli", "accounts", "create", "--name", "a", "--json"],
            cwd=tmp_path,
            env={**env, "PYTHONPATH": str(Path(__file__).parents[1])},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert created.returncode == 0, created.stderr
        assert json.loads(created.stdout.splitlines()[-1])["name"] == "a"
        assert (tmp_path / ".toingg" / "postgres" / "data" / "PG_VERSION").exists()
        assert embedded_postgres.running_url(tmp_path / ".toingg" / "postgres") is None
