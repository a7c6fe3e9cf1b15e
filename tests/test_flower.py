"""`toingg flower` as docker-compose runs it: its credentials guard every page and appear on no
command line, which anyone on the host can read (ps)."""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shared.embedded_redis import free_port
from tests.stack import wait_until

CREDENTIALS = ("ops", "flower-s3cret")


@pytest.fixture
def flower(tmp_path: Path) -> Iterator[tuple[str, int]]:
    port = free_port()
    env = {**os.environ, "FLOWER_BASIC_AUTH": ":".join(CREDENTIALS)}
    process = subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "flower", "--address", "127.0.0.1", "--port",
         str(port)],
        env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{url}/healthcheck").status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(up, 60, interval=0.5, message="Flower answers")
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=15)


class TestFlower:
    def test_credentials_guard_it_and_are_on_no_command_line(self, flower: tuple[str, int]) -> None:
        url, pid = flower
        assert httpx.get(f"{url}/workers").status_code == 401
        assert httpx.get(f"{url}/workers", auth=CREDENTIALS).status_code == 200
        # The process Flower runs in is the one started (exec), so this is its command line.
        command_line = Path(f"/proc/{pid}/cmdline").read_bytes().decode()
        assert "flower" in command_line
        assert CREDENTIALS[1] not in command_line
