"""`toingg run` keeps its processes up as docker-compose's restart policy does: one that exits
by itself is started again; one that cannot start, or an embedded service that exits, stops the
stack."""

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from shared.cli import stack


def exits_at_first_start(starts: Path) -> list[str]:
    """A process that counts its starts in `starts`, exits at its first and stays up after."""
    script = (
        "import pathlib, sys, time\n"
        f"starts = pathlib.Path({str(starts)!r})\n"
        "with starts.open('a') as f: f.write('started\\n')\n"
        "if len(starts.read_text().splitlines()) == 1: sys.exit(1)\n"
        "time.sleep(60)\n"
    )
    return [sys.executable, "-c", script]


def watch_until(children: list[stack.Child], done: Callable[[], bool]) -> int:
    """What `toingg run` does until Ctrl-C, with Ctrl-C pressed once `done` is true (or after
    30 s)."""
    stopping, returned = threading.Event(), threading.Event()

    def press_ctrl_c() -> None:
        deadline = time.monotonic() + 30
        while not (returned.is_set() or done() or time.monotonic() > deadline):
            time.sleep(0.05)
        stopping.set()

    presser = threading.Thread(target=press_ctrl_c, daemon=True)
    presser.start()
    try:
        return stack._watch(children, stopping)
    finally:
        returned.set()
        presser.join()
        stack._stop(children)


def starts_of(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_a_worker_that_exits_is_started_again(tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    argv = exits_at_first_start(starts)
    worker = stack.Child("worker", subprocess.Popen(argv), argv)
    restarted: list[bool] = []

    def second_one_up() -> bool:
        if starts_of(starts) == 2 and worker.process.poll() is None:
            restarted.append(True)
        return bool(restarted)

    assert watch_until([worker], second_one_up) == 0
    assert restarted and starts_of(starts) == 2


def test_a_process_that_cannot_start_stops_the_stack() -> None:
    argv = [sys.executable, "-c", "import sys; sys.exit(2)"]
    api = stack.Child("api", subprocess.Popen(argv), argv)
    assert watch_until([api], lambda: False) == 1
    assert api.quick_exits == stack.QUICK_EXITS


def test_the_embedded_redis_exiting_stops_the_stack() -> None:
    redis = stack.Child("redis", subprocess.Popen([sys.executable, "-c", "pass"]))
    argv = [sys.executable, "-c", "import time; time.sleep(60)"]
    worker = stack.Child("worker", subprocess.Popen(argv), argv)
    assert watch_until([redis, worker], lambda: False) == 1
    assert worker.process.poll() is not None  # stopped with the stack
