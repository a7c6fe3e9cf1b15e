"""The stack's processes: each one alone (as docker-compose runs them), or all at once on
embedded defaults for development (`toingg run`)."""

import argparse
import fcntl
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from api.main import MAX_CONCURRENT_REQUESTS
from shared import embedded_postgres, embedded_redis, migrate
from shared.accounts import service as accounts_service
from shared.config import (
    DEV_STRIPE_SECRET_KEY,
    DEV_TWILIO_ACCOUNT_SID,
    TWILIO_DEFAULT_API_BASE,
    get_settings,
)
from shared.db import session_scope
from shared.queue import QUEUES, WEBHOOK_QUEUE, WORK_QUEUES

STATE_DIR = Path(".toingg")
POSTGRES_DIR = STATE_DIR / "postgres"
CELERY_APP = "workers.celery_app"
# The webhook worker's tasks are the delivery ticks alone, each over in a moment: its requests go
# out on the sender threads the first tick starts (workers/tasks/webhooks.py).
WEBHOOK_WORKER_CONCURRENCY = 2


def _exec(argv: list[str], env: dict[str, str] | None = None) -> int:
    os.execvpe(argv[0], argv, env if env is not None else dict(os.environ))


def api_argv(host: str, port: int, workers: int = 1) -> list[str]:
    # h11, not httptools (uvicorn's default when installed): httptools keeps a header of any
    # size a client sends before the request reaches the API; h11 keeps at most 16 KiB of an
    # unfinished header block and answers 400 past it.
    return [
        sys.executable, "-m", "uvicorn", "api.main:create_app", "--factory",
        "--host", host, "--port", str(port), "--workers", str(workers), "--no-access-log",
        "--limit-concurrency", str(MAX_CONCURRENT_REQUESTS), "--http", "h11", *_proxy_argv(),
    ]  # fmt: skip


def _proxy_argv() -> list[str]:
    # uvicorn believes X-Forwarded-For from 127.0.0.1 unless told otherwise: only the proxies
    # the settings name may set the client address the bad-key limit counts.
    allowed = get_settings().FORWARDED_ALLOW_IPS
    if not allowed:
        return ["--no-proxy-headers"]
    return ["--proxy-headers", "--forwarded-allow-ips", allowed]


def worker_argv(concurrency: int, queues: str, hostname: str | None = None) -> list[str]:
    # Dialing waits on Twilio's HTTP answers, not on the CPU: threads keep many requests in
    # flight per process at a fraction of prefork's memory. A node name of its own unless given,
    # so several workers on one host do not clash.
    return [
        sys.executable, "-m", "celery", "-A", CELERY_APP, "worker", "--loglevel=INFO",
        "--pool=threads", f"--concurrency={concurrency}", f"--queues={queues}",
        f"--hostname={hostname or f'worker-{secrets.token_hex(3)}@%h'}",
    ]  # fmt: skip


def webhook_worker_argv(hostname: str | None = None) -> list[str]:
    """A worker that delivers webhooks and does nothing else (shared.queue.WEBHOOK_QUEUE)."""
    return worker_argv(
        WEBHOOK_WORKER_CONCURRENCY,
        WEBHOOK_QUEUE,
        hostname or f"webhooks-{secrets.token_hex(3)}@%h",
    )


def workers_argv(concurrency: int) -> list[tuple[str, list[str]]]:
    """The workers `toingg run` starts, as docker-compose runs them: one for every queue but
    webhook delivery's, and a webhook worker."""
    return [
        ("worker", worker_argv(concurrency, ",".join(WORK_QUEUES))),
        ("webhooks", webhook_worker_argv()),
    ]


def beat_argv(schedule_file: Path) -> list[str]:
    return [
        sys.executable, "-m", "celery", "-A", CELERY_APP, "beat", "--loglevel=INFO",
        f"--schedule={schedule_file}",
    ]  # fmt: skip


def flower_argv(address: str, port: int) -> list[str]:
    # No --basic-auth: a command line is there for anyone on the host to read (ps). Flower takes
    # FLOWER_BASIC_AUTH from its environment instead (flower_env).
    return [
        sys.executable, "-m", "celery", "-A", CELERY_APP, "flower",
        f"--address={address}", f"--port={port}",
    ]  # fmt: skip


def flower_env(env: dict[str, str]) -> dict[str, str]:
    """`env` with Flower's credentials as the settings have them (perhaps from .env, which
    Flower does not read)."""
    return {**env, "FLOWER_BASIC_AUTH": get_settings().FLOWER_BASIC_AUTH}


def sandbox_argv() -> list[str]:
    return [sys.executable, "-m", "sandbox"]


def _ensure_demo_account() -> str:
    """The demo account's API key, made on first start and kept in .toingg/ for later starts."""
    key_file = STATE_DIR / "demo-api-key"
    with session_scope() as session:
        if key_file.exists() and accounts_service.authenticate(
            session, key_file.read_text().strip()
        ):
            return key_file.read_text().strip()
        _, key = accounts_service.create_account(session, "demo", credits=100)
    key_file.write_text(key.secret)
    key_file.chmod(0o600)
    return key.secret


# A process of the stack that exits by itself is started again, as docker-compose's `restart:
# unless-stopped` does (a worker may exit on a broker's loss, and nothing would take the queues'
# work meanwhile). One that exits this soon after each of a few starts in a row cannot start (a
# port taken, a bad setting): the stack stops rather than start it for ever.
QUICK_EXIT_SECONDS = 10.0
QUICK_EXITS = 3


@dataclass
class Child:
    """A process of the stack, with what starts it again; none for the embedded Redis, whose
    exit stops the stack (what runs on it would only fail meanwhile)."""

    name: str
    process: subprocess.Popen[bytes]
    argv: list[str] | None = None
    env: dict[str, str] | None = None
    started_at: float = field(default_factory=time.monotonic)
    quick_exits: int = 0


def run(args: argparse.Namespace) -> int:
    """Everything on embedded defaults; Ctrl-C stops every process."""
    if get_settings().ENVIRONMENT == "production":
        # It makes a demo account with free credits, and may start the sandbox and the
        # embedded servers: all for development.
        sys.exit(
            "toingg run: refusing to start with ENVIRONMENT=production: it is the development "
            "stack (a demo account with free credits, the sandbox, embedded servers); run each "
            "process as docker-compose.yml does"
        )
    STATE_DIR.mkdir(exist_ok=True)
    # Held until this process ends: one stack per folder (its Redis files, its demo key).
    running = open(STATE_DIR / "run.lock", "ab")  # noqa: SIM115
    try:
        fcntl.flock(running, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"another `toingg run` is using {STATE_DIR}; stop it first", flush=True)
        return 1
    env = dict(os.environ)
    children: list[Child] = []
    leave_database: Callable[[], None] | None = None
    if not env.get("DATABASE_URL"):
        # The one an admin command started meanwhile, if any: the last user stops it.
        joined = embedded_postgres.join(POSTGRES_DIR, may_start=True)
        assert joined is not None
        env["DATABASE_URL"], leave_database = joined
    if not env.get("REDIS_URL"):
        redis_process, env["REDIS_URL"] = embedded_redis.start(
            STATE_DIR / "redis", port=args.redis_port
        )
        children.append(Child("redis", redis_process))
    settings = get_settings()
    sandbox_url = f"http://127.0.0.1:{args.sandbox_port}"
    # No Twilio credentials: the sandbox carrier. No Stripe key: the checkout stand-in.
    sandbox_carrier = (
        settings.TWILIO_API_BASE == TWILIO_DEFAULT_API_BASE
        and settings.TWILIO_ACCOUNT_SID == DEV_TWILIO_ACCOUNT_SID
    )
    sandbox_checkout = not settings.STRIPE_SECRET_KEY
    if sandbox_carrier:
        env["TWILIO_API_BASE"] = sandbox_url
    if sandbox_checkout:
        env["STRIPE_SECRET_KEY"] = DEV_STRIPE_SECRET_KEY
        env["STRIPE_API_BASE"] = f"{sandbox_url}/stripe"
    env["SANDBOX_PORT"] = str(args.sandbox_port)
    env.setdefault("PUBLIC_BASE_URL", f"http://127.0.0.1:{args.port}")
    os.environ.update(env)
    get_settings.cache_clear()

    migrate.upgrade()
    api_key = _ensure_demo_account()

    plan: list[tuple[str, list[str]]] = [
        ("api", api_argv("127.0.0.1", args.port)),
        *workers_argv(args.concurrency),
        ("beat", beat_argv(STATE_DIR / "celerybeat-schedule")),
        ("flower", flower_argv("127.0.0.1", args.flower_port)),
    ]
    if sandbox_carrier or sandbox_checkout:
        plan.insert(0, ("sandbox", sandbox_argv()))
    for name, argv in plan:
        child_env = flower_env(env) if name == "flower" else env
        children.append(Child(name, subprocess.Popen(argv, env=child_env), argv, child_env))

    user, _, _ = settings.FLOWER_BASIC_AUTH.partition(":")
    print(
        "\n"
        f"  Toingg is starting (database {env['DATABASE_URL']}, redis {env['REDIS_URL']})\n"
        f"  carrier:  {'sandbox at ' + sandbox_url if sandbox_carrier else 'Twilio'}\n"
        f"  payments: {'checkout stand-in, ' + sandbox_url if sandbox_checkout else 'Stripe'}\n"
        f"  API docs: http://127.0.0.1:{args.port}/api/docs\n"
        f"  Flower:   http://127.0.0.1:{args.flower_port}  (user {user!r}, FLOWER_BASIC_AUTH)\n"
        f"  demo API key: {api_key}\n"
        "  Ctrl-C stops everything.\n",
        flush=True,
    )
    return _supervise(children, leave_database)


def _supervise(children: list[Child], leave_database: Callable[[], None] | None) -> int:
    stopping = threading.Event()
    signal.signal(signal.SIGINT, lambda _signum, _frame: stopping.set())
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stopping.set())
    exit_code = _watch(children, stopping)
    _stop(children)
    if leave_database is not None:
        leave_database()  # stops it unless another command still uses it
    return exit_code


def _watch(children: list[Child], stopping: threading.Event) -> int:
    """Until `stopping` is set (0) or a process cannot be kept running (1)."""
    while not stopping.wait(0.2):
        for child in children:
            if child.process.poll() is None or stopping.is_set():
                continue
            code = child.process.returncode
            if child.argv is None:
                print(f"{child.name} exited with {code}; stopping the stack", flush=True)
                return 1
            quick = time.monotonic() - child.started_at < QUICK_EXIT_SECONDS
            child.quick_exits = child.quick_exits + 1 if quick else 0
            if child.quick_exits >= QUICK_EXITS:
                print(
                    f"{child.name} exited with {code} {QUICK_EXITS} times, each within "
                    f"{QUICK_EXIT_SECONDS:g} s of its start; stopping the stack",
                    flush=True,
                )
                return 1
            print(f"{child.name} exited with {code}; starting it again", flush=True)
            child.process = subprocess.Popen(child.argv, env=child.env)
            child.started_at = time.monotonic()
    return 0


def _stop(children: list[Child]) -> None:
    # The embedded Redis goes last (then the database), so the others can finish what they were
    # doing.
    services = [c for c in children if c.argv is None]
    others = [c for c in children if c.argv is not None]
    for child in reversed(others):
        if child.process.poll() is None:
            child.process.terminate()
    for child in others:
        try:
            child.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.process.kill()
    for child in reversed(services):
        if child.process.poll() is None:
            child.process.terminate()
            child.process.wait(timeout=10)


def add_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    run_cmd = commands.add_parser("run", help="the whole stack on embedded defaults")
    run_cmd.add_argument("--port", type=int, default=8000)
    run_cmd.add_argument("--flower-port", type=int, default=5555)
    run_cmd.add_argument("--sandbox-port", type=int, default=8081)
    run_cmd.add_argument("--redis-port", type=int, default=None)
    run_cmd.add_argument("--concurrency", type=int, default=16)
    run_cmd.set_defaults(func=run, database="own")

    api = commands.add_parser("api", help="the HTTP API (uvicorn)")
    api.add_argument("--host", default="0.0.0.0")
    api.add_argument("--port", type=int, default=8000)
    api.add_argument("--workers", type=int, default=1)
    api.set_defaults(func=lambda a: _exec(api_argv(a.host, a.port, a.workers)), database="find")

    worker = commands.add_parser("worker", help="a Celery worker")
    worker.add_argument("--concurrency", type=int, default=16)
    worker.add_argument("--queues", default=",".join(QUEUES))
    worker.add_argument("--hostname", help="Celery node name (default: worker-<random>@%%h)")
    worker.set_defaults(
        func=lambda a: _exec(worker_argv(a.concurrency, a.queues, a.hostname)), database="find"
    )

    webhooks = commands.add_parser(
        "webhook-worker", help="a Celery worker that delivers webhooks and nothing else"
    )
    webhooks.add_argument("--hostname", help="Celery node name (default: webhooks-<random>@%%h)")
    webhooks.set_defaults(func=lambda a: _exec(webhook_worker_argv(a.hostname)), database="find")

    beat = commands.add_parser("beat", help="the scheduler that wakes the dispatcher")
    beat.add_argument("--schedule", type=Path, default=Path("/tmp/celerybeat-schedule"))
    beat.set_defaults(func=lambda a: _exec(beat_argv(a.schedule)), database="find")

    flower = commands.add_parser("flower", help="Flower, the Celery monitor")
    flower.add_argument("--address", default="0.0.0.0")
    flower.add_argument("--port", type=int, default=5555)
    flower.set_defaults(
        func=lambda a: _exec(flower_argv(a.address, a.port), flower_env(dict(os.environ))),
        database="find",
    )

    sandbox = commands.add_parser("sandbox", help="the Twilio-compatible sandbox carrier")
    sandbox.set_defaults(func=lambda a: _exec(sandbox_argv()), database="none")
