"""The embedded PostgreSQL that `toingg run` and the tests use when DATABASE_URL is unset."""

import argparse
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import redis

from shared import embedded_postgres
from shared.cli import stack
from shared.embedded_redis import free_port

ROOT = Path(__file__).parents[1]


def _dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    return {**env, "PYTHONPATH": str(ROOT)}


def _create_account(cwd: Path, name: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "accounts", "create", "--name", name, "--json"],
        cwd=cwd,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


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
        created = subprocess.run(
            [sys.executable, "-m", "shared.cli", "accounts", "create", "--name", "a", "--json"],
            cwd=tmp_path,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert created.returncode == 0, created.stderr
        assert json.loads(created.stdout.splitlines()[-1])["name"] == "a"
        assert (tmp_path / ".toingg" / "postgres" / "data" / "PG_VERSION").exists()
        assert embedded_postgres.running_url(tmp_path / ".toingg" / "postgres") is None


class TestTwoCommandsAtOnce:
    def test_two_admin_commands_started_together_both_succeed(self, tmp_path: Path) -> None:
        # A script creating two accounts in parallel on a machine where the stack is stopped.
        first, second = _create_account(tmp_path, "a"), _create_account(tmp_path, "b")
        results = [(p.wait(timeout=120), *p.communicate()) for p in (first, second)]
        failed = [err.strip().splitlines()[-1:] for code, _, err in results if code != 0]
        assert not failed, f"a command failed: {failed}"
        names = {json.loads(out.splitlines()[-1])["name"] for _, out, _ in results}
        assert names == {"a", "b"}

    def test_a_command_that_found_the_server_keeps_it_when_its_starter_ends(
        self, tmp_path: Path
    ) -> None:
        # Command A starts the server for itself; command B, started meanwhile, finds it
        # running (postmaster.pid) and uses it; A finishes first and stops it.
        script = """
import os, psycopg
from shared.cli import _find_or_start_database
stop_a = _find_or_start_database("start")
url_a = os.environ.pop("DATABASE_URL")
stop_b = _find_or_start_database("start")
url_b = os.environ["DATABASE_URL"]
assert url_b == url_a, (url_a, url_b)
stop_a()
try:
    with psycopg.connect(url_b.replace("+psycopg", ""), connect_timeout=3) as c:
        c.execute("SELECT 1")
    print("B still has its database")
except psycopg.OperationalError as exc:
    print("B lost its database:", str(exc).splitlines()[0])
finally:
    stop_b()
"""
        run = subprocess.run(
            [sys.executable, "-c", script],
            cwd=tmp_path,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stderr
        assert run.stdout.strip().splitlines()[-1] == "B still has its database"

    def test_the_server_stops_when_its_last_user_is_killed(self, tmp_path: Path) -> None:
        # A command killed (SIGKILL) never runs its ending; nor does a program it execs.
        script = """
import time
from pathlib import Path
from shared import embedded_postgres
url, _leave = embedded_postgres.join(Path(".toingg/postgres"), may_start=True)
print(url, flush=True)
time.sleep(60)
"""
        user = subprocess.Popen(
            [sys.executable, "-c", script], cwd=tmp_path, env=_env(), stdout=subprocess.PIPE
        )
        assert user.stdout is not None
        url = user.stdout.readline().decode().strip()
        data_dir = tmp_path / ".toingg" / "postgres"
        assert embedded_postgres.running_url(data_dir) == url
        user.kill()
        user.wait()
        deadline = time.monotonic() + 15
        pid_file = data_dir / "data" / "postmaster.pid"
        while pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not pid_file.exists(), "the server outlived every process that used it"

    def test_a_second_toingg_run_in_the_same_folder_is_refused(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        monkeypatch.chdir(tmp_path)
        (tmp_path / ".toingg").mkdir()
        with open(tmp_path / ".toingg" / "run.lock", "ab") as first:
            fcntl.flock(first, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as the first `toingg run` holds it
            assert stack.run(argparse.Namespace()) == 1
        assert "another `toingg run` is using .toingg" in capsys.readouterr().out


class TestAStalePidFile:
    def test_a_pid_file_left_by_a_crash_is_not_taken_for_a_running_server(
        self, tmp_path: Path
    ) -> None:
        # The machine (or container) stopped without a clean shutdown: postmaster.pid stays,
        # and after the restart its pid belongs to another process (pids start over).
        data_dir = tmp_path / "postgres"
        process, _ = embedded_postgres.start(data_dir)
        embedded_postgres.stop(process)
        pid_file = data_dir / "data" / "postmaster.pid"
        lines = [str(os.getpid()), str(data_dir / "data"), "1700000000", str(free_port())]
        pid_file.write_text("\n".join([*lines, "", "127.0.0.1", "0 0", "ready   ", ""]))
        found = embedded_postgres.running_url(data_dir)
        assert found is None, (
            f"running_url says a server runs at {found}: `toingg run` refuses to start "
            "('another `toingg run` is using ...') and admin commands connect to a dead port"
        )

    def test_a_command_starts_the_server_over_a_pid_file_naming_a_live_process(
        self, tmp_path: Path
    ) -> None:
        # PostgreSQL itself refuses to start while the pid in its file is a live process of its
        # own user ("is another postmaster running?").
        process, _ = embedded_postgres.start(tmp_path / ".toingg" / "postgres")
        embedded_postgres.stop(process)
        run_as = embedded_postgres._run_as()
        other = subprocess.Popen(["sleep", "60"], **run_as)  # type: ignore[call-overload]
        try:
            pid_file = tmp_path / ".toingg" / "postgres" / "data" / "postmaster.pid"
            data = str(pid_file.parent)
            lines = [str(other.pid), data, "1700000000", str(free_port()), "", "127.0.0.1"]
            pid_file.write_text("\n".join([*lines, "0 0", "ready   ", ""]))
            created = _create_account(tmp_path, "a")
            out, err = created.communicate(timeout=120)
            assert created.returncode == 0, err
            assert json.loads(out.splitlines()[-1])["name"] == "a"
        finally:
            other.kill()
            other.wait()


class TestCtrlC:
    def test_the_embedded_redis_outlives_a_ctrl_c_until_the_stack_stops_it(
        self, tmp_path: Path
    ) -> None:
        # `toingg run` as a terminal runs it: the foreground process group, whose every member
        # Ctrl-C signals. The stack catches SIGINT and stops the API and workers first, "the
        # embedded database and Redis go last, so the others can finish what they were doing".
        script = """
import signal, sys, time
from pathlib import Path
from shared import embedded_postgres, embedded_redis
signal.signal(signal.SIGINT, lambda *_: None)
redis, redis_url = embedded_redis.start(Path(sys.argv[1]) / "redis", persist=False)
postgres, postgres_url = embedded_postgres.start(Path(sys.argv[1]) / "postgres")
print(redis_url, postgres_url, flush=True)
time.sleep(60)
"""
        stack = subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path)],
            cwd=ROOT,
            env=_env(),
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group, as a shell's foreground job
        )
        try:
            assert stack.stdout is not None
            redis_url, postgres_url = stack.stdout.readline().split()
            os.killpg(stack.pid, signal.SIGINT)  # Ctrl-C
            time.sleep(1)
            answers = {}
            try:
                answers["redis"] = bool(redis.Redis.from_url(redis_url, socket_timeout=2).ping())
            except redis.RedisError as exc:
                answers["redis"] = str(exc)
            dsn = postgres_url.replace("+psycopg", "")
            try:
                with psycopg.connect(dsn, connect_timeout=2) as connection:
                    answers["postgres"] = connection.execute("SELECT true").fetchone() == (True,)
            except psycopg.OperationalError as exc:
                answers["postgres"] = str(exc).splitlines()[0]
            assert answers == {"redis": True, "postgres": True}, (
                "right after Ctrl-C, before the stack stopped anything: " + repr(answers)
            )
        finally:
            stack.kill()  # its servers stop with it (the parent-death signal) or are killed
            stack.wait()
