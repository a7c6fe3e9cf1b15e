"""The `toingg` command: the stack's processes and the admin tasks."""

import argparse
import logging
import sys

from shared.cli import admin, stack


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    parser = argparse.ArgumentParser(prog="toingg", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    stack.add_commands(commands)
    admin.add_commands(commands)
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
