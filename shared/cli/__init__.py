"""The `toingg` command: the stack's processes and the admin tasks."""

import argparse
import logging
import os
import sys
from collections.abc import Callable

from shared import embedded_postgres
from shared.cli import admin, dnc, listen, stack
from shared.config import get_settings, settings_or_exit


def _find_or_start_database(mode: str) -> Callable[[], None]:
    """With DATABASE_URL unset, a command uses the embedded PostgreSQL that `toingg run` keeps in
    .toingg/: the running one, or (for an admin command) one started for it, shared with every
    other command that finds it meanwhile. Returns what ends this command's use of it; a
    process this command execs keeps using it until it exits."""
    if os.environ.get("DATABASE_URL") or mode in ("none", "own"):
        return lambda: None
    joined = embedded_postgres.join(stack.POSTGRES_DIR, may_start=mode == "start")
    if joined is None:
        return lambda: None  # the settings say what is missing when the process first needs it
    os.environ["DATABASE_URL"], leave = joined
    get_settings.cache_clear()
    return leave


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    parser = argparse.ArgumentParser(prog="toingg", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    stack.add_commands(commands)
    admin.add_commands(commands)
    dnc.add_commands(commands)
    listen.add_commands(commands)
    args = parser.parse_args(argv)
    # Every process and admin command checks its settings before it does anything: production
    # on a development part (a secret, the sandbox, plain HTTP) ends here, naming it.
    settings_or_exit("toingg")
    stop_database = _find_or_start_database(getattr(args, "database", "start"))
    try:
        return int(args.func(args) or 0)
    finally:
        stop_database()


if __name__ == "__main__":
    sys.exit(main())
