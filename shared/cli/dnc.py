"""Operators' commands for the do-not-contact lists: the global list, which binds every
account, and any account's own."""

import argparse
import json

from shared.accounts import service as accounts_service
from shared.db import session_scope
from shared.dnc import service as dnc
from shared.dnc import sources
from shared.telephony.numbers import InvalidNumber


def _list_of(args: argparse.Namespace) -> str | None:
    return None if args.is_global else args.account


def _which(args: argparse.Namespace) -> str:
    return "the global list" if args.is_global else f"account {args.account}'s list"


def dnc_add(args: argparse.Namespace) -> int:
    with session_scope() as session:
        try:
            entry = dnc.add(session, _list_of(args), args.number, args.reason, sources.OPERATOR)
        except InvalidNumber as exc:
            print(exc)
            return 1
        except accounts_service.UnknownAccount:
            print(f"no account {args.account!r}")
            return 1
        number, reason = entry.number, entry.reason
    print(f"{number} is on {_which(args)} ({reason}): it is neither called nor texted")
    return 0


def dnc_remove(args: argparse.Namespace) -> int:
    with session_scope() as session:
        try:
            entry = dnc.remove(session, _list_of(args), args.number, args.reason, sources.OPERATOR)
        except InvalidNumber as exc:
            print(exc)
            return 1
        except accounts_service.UnknownAccount:
            print(f"no account {args.account!r}")
            return 1
        except dnc.NotListed as exc:
            print(f"{exc} is not on {_which(args)}")
            return 1
        number = entry.number
    print(f"{number} is off {_which(args)}")
    return 0


def dnc_list(args: argparse.Namespace) -> int:
    """The list's numbers, each with its history (what GET /api/dnc/export gives an account)."""
    rows = []
    with session_scope() as session:
        for number, listed, action, reason, source, at in dnc.with_history(session, _list_of(args)):
            rows.append(
                {
                    "number": number,
                    "listed": listed,
                    "action": action,
                    "reason": reason,
                    "source": source,
                    "at": at.isoformat(),
                }
            )
    if args.json:
        print(json.dumps(rows))
        return 0
    for row in rows:
        now = "listed" if row["listed"] else "not listed"
        print(
            f"{row['number']} ({now}): {row['action']} {row['at']} by {row['source']}: "
            f"{row['reason']}"
        )
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    lists = commands.add_parser(
        "dnc", help="do-not-contact lists: numbers never called or texted"
    ).add_subparsers(required=True)
    for name, func, what in (
        ("add", dnc_add, "put a number on a list"),
        ("remove", dnc_remove, "take a number off a list (its history stays)"),
        ("list", dnc_list, "a list's numbers with their history"),
    ):
        command = lists.add_parser(name, help=what)
        if name != "list":
            command.add_argument("number", help="E.164, e.g. +14155550100")
            command.add_argument("--reason", required=True, help="why, kept in its history")
        scope = command.add_mutually_exclusive_group(required=True)
        scope.add_argument(
            "--global", dest="is_global", action="store_true", help="the list of every account"
        )
        scope.add_argument("--account", help="an account's own list (its id)")
        if name == "list":
            command.add_argument("--json", action="store_true", help="print JSON")
        command.set_defaults(func=func)
