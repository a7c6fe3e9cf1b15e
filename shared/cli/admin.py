"""Admin commands: the schema, accounts and their caller IDs, API keys, credits, Stripe events
and retention."""

import argparse
import json
from datetime import UTC, datetime

from shared import migrate
from shared.accounts import service as accounts_service
from shared.billing import disputes, ledger
from shared.billing import events as billing_events
from shared.caller_ids import service as caller_ids
from shared.calls import service as calls_service
from shared.db import session_scope
from shared.models import Account, new_id
from shared.ratelimit import api as api_limits
from shared.retention import service as retention_service
from shared.webhooks import per_call


def db_upgrade(_args: argparse.Namespace) -> int:
    migrate.upgrade()
    print("database is at the latest migration")
    return 0


def accounts_create(args: argparse.Namespace) -> int:
    migrate.upgrade()
    with session_scope() as session:
        account, key = accounts_service.create_account(session, args.name, args.credits)
        out = {
            "accountId": account.id,
            "name": account.name,
            "credits": account.credits,
            "apiKey": key.secret,
            "keyPrefix": key.api_key.prefix,
        }
    if args.json:
        print(json.dumps(out))
    else:
        print(f"account {out['accountId']} ({out['name']}), {out['credits']} credits")
        print(f"API key (shown once): {out['apiKey']}")
    return 0


def _positive(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a positive number")
    return value


def _positive_whole(raw: str) -> int:
    if not raw.isdigit() or int(raw) == 0:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a positive whole number")
    return int(raw)


def accounts_limits(args: argparse.Namespace) -> int:
    with session_scope() as session:
        try:
            account = accounts_service.set_limits(
                session,
                args.account,
                api_rate_per_second=args.api_rate,
                api_burst=args.api_burst,
                max_concurrent_calls=args.max_concurrent_calls,
            )
        except accounts_service.UnknownAccount:
            print(f"no account {args.account!r}")
            return 1
        rate, burst = api_limits.limits(account)
        out = {
            "accountId": account.id,
            "apiRatePerSecond": rate,
            "apiBurst": burst,
            "maxConcurrentCalls": calls_service.line_limit(account),
        }
    if args.json:
        print(json.dumps(out))
    else:
        print(
            f"account {out['accountId']}: API {rate:g} requests/s, burst {burst}; "
            f"{out['maxConcurrentCalls']} live calls at once"
        )
    return 0


def accounts_unblock(args: argparse.Namespace) -> int:
    with session_scope() as session:
        try:
            was_blocked, dispute_id = disputes.unblock(session, args.account)
        except disputes.UnknownAccount:
            print(f"no account {args.account!r}")
            return 1
    if not was_blocked:
        print(f"account {args.account} was not blocked")
    elif dispute_id:
        print(f"account {args.account} unblocked; dispute {dispute_id} is still open at Stripe")
    else:
        print(f"account {args.account} unblocked")
    return 0


def accounts_webhook_secret(args: argparse.Namespace) -> int:
    with session_scope() as session:
        try:
            rotated = per_call.rotate_secret(session, args.account)
        except accounts_service.UnknownAccount:
            print(f"no account {args.account!r}")
            return 1
    expires = rotated.previous_expires_at
    out = {
        "accountId": args.account,
        "secret": rotated.secret,
        "previousSecretExpiresAt": None if expires is None else expires.isoformat(),
    }
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"webhook secret of account {args.account} (shown once): {rotated.secret}")
    if expires is not None:
        print(f"the secret it replaces signs beside it until {out['previousSecretExpiresAt']}")
    return 0


def caller_ids_add(args: argparse.Namespace) -> int:
    with session_scope() as session:
        try:
            added = caller_ids.add(session, args.account, args.number)
        except (caller_ids.InvalidCallerId, caller_ids.CallerIdTaken) as exc:
            print(exc)
            return 1
        except accounts_service.UnknownAccount:
            print(f"no account {args.account!r}")
            return 1
        number = added.number
    print(f"account {args.account} may call and text from {number}")
    return 0


def caller_ids_remove(args: argparse.Namespace) -> int:
    with session_scope() as session:
        try:
            number = caller_ids.remove(session, args.account, args.number)
        except caller_ids.InvalidCallerId as exc:
            print(exc)
            return 1
        except caller_ids.UnknownCallerId as exc:
            print(f"{exc} is not a caller ID of account {args.account}")
            return 1
    print(
        f"account {args.account} no longer calls or texts from {number}; its queued calls and "
        "SMS from it fail when their turn comes"
    )
    return 0


def caller_ids_list(args: argparse.Namespace) -> int:
    with session_scope() as session:
        if session.get(Account, args.account) is None:
            print(f"no account {args.account!r}")
            return 1
        out = {
            "accountId": args.account,
            "callerIds": [row.number for row in caller_ids.of_account(session, args.account)],
            "platformNumber": caller_ids.platform_number(),
            "default": caller_ids.default(session, args.account),
        }
    if args.json:
        print(json.dumps(out))
        return 0
    for number in out["callerIds"]:
        print(number)
    if out["platformNumber"]:
        print(f"{out['platformNumber']} (the platform's, shared by every account)")
    if out["default"] is None:
        print(f"account {args.account} has no caller ID: it can neither call nor text")
    return 0


def events_dead(args: argparse.Namespace) -> int:
    with session_scope() as session:
        out = [
            {
                "id": row.id,
                "eventId": row.external_id,
                "type": row.type,
                "attempts": row.attempts,
                "reason": row.pending_reason,
                "receivedAt": row.created_at.isoformat(),
                "deadAt": row.dead_at.isoformat() if row.dead_at else None,
            }
            for row in billing_events.dead(session)
        ]
    if args.json:
        print(json.dumps(out))
    elif not out:
        print("no dead Stripe events")
    for event in [] if args.json else out:
        print(
            f"{event['eventId']} {event['type']}: dead since {event['deadAt']} after "
            f"{event['attempts']} attempts: {event['reason']}"
        )
    return 0


def keys_create(args: argparse.Namespace) -> int:
    with session_scope() as session:
        try:
            key = accounts_service.create_key(session, args.account)
        except accounts_service.UnknownAccount:
            print(f"no account {args.account!r}")
            return 1
        out = {"accountId": args.account, "apiKey": key.secret, "keyPrefix": key.api_key.prefix}
    print(json.dumps(out) if args.json else f"API key (shown once): {out['apiKey']}")
    return 0


def keys_revoke(args: argparse.Namespace) -> int:
    with session_scope() as session:
        try:
            key = accounts_service.revoke_key(session, args.prefix)
        except accounts_service.UnknownKey:
            print(f"no API key with prefix {args.prefix!r}")
            return 1
        print(f"revoked {key.prefix} (account {key.account_id})")
    return 0


def credits_grant(args: argparse.Namespace) -> int:
    if args.credits <= 0:
        print("credits must be a positive number")
        return 1
    with session_scope() as session:
        if session.get(Account, args.account) is None:
            print(f"no account {args.account!r}")
            return 1
        entry = ledger.apply(
            session,
            ledger.Change(
                args.account, args.credits, "manual_grant", "account", args.account,
                reference=f"manual:{new_id()}", note=args.reason,
            ),
        )  # fmt: skip
        assert entry is not None
        calls_service.resume_waiting(session, args.account)
        print(f"granted {args.credits}; balance {entry.balance_after}")
    return 0


def _moment(raw: str) -> datetime:
    """A date (midnight UTC) or an ISO 8601 time (UTC unless it names its offset)."""
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{raw!r} is not a date (YYYY-MM-DD) or an ISO 8601 time"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def purge(args: argparse.Namespace) -> int:
    purged = retention_service.purge(args.before)
    print(
        f"emptied what was created before {args.before.isoformat()}: "
        f"{purged.call_event_params} call events' Twilio parameters, "
        f"{purged.sms_bodies} SMS bodies, {purged.stripe_payloads} Stripe event payloads; "
        f"deleted the dispatch turns of {purged.dispatch_turns} call groups and "
        f"{purged.sms_turns} accounts' messages idle for an hour, and "
        f"{purged.webhook_deliveries} webhook deliveries over before then, with their "
        f"{purged.webhook_attempts} attempts (the events stay)"
    )
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    db = commands.add_parser("db", help="the database schema").add_subparsers(required=True)
    db.add_parser("upgrade", help="apply every migration").set_defaults(func=db_upgrade)

    accounts = commands.add_parser("accounts", help="customer accounts")
    account_commands = accounts.add_subparsers(required=True)
    create = account_commands.add_parser("create", help="a new account")
    create.add_argument("--name", required=True)
    create.add_argument("--credits", type=int, default=0)
    create.add_argument("--json", action="store_true", help="print JSON")
    create.set_defaults(func=accounts_create)
    limits = account_commands.add_parser(
        "limits", help="show an account's limits, or override the defaults for it"
    )
    limits.add_argument("account", help="account id")
    limits.add_argument("--api-rate", type=_positive, help="API requests per second")
    limits.add_argument("--api-burst", type=_positive_whole, help="API requests at once")
    limits.add_argument("--max-concurrent-calls", type=_positive_whole, help="live calls at once")
    limits.add_argument("--json", action="store_true", help="print JSON")
    limits.set_defaults(func=accounts_limits)
    unblock = account_commands.add_parser(
        "unblock", help="lift the block a dispute put on an account: it may call and send again"
    )
    unblock.add_argument("account", help="account id")
    unblock.set_defaults(func=accounts_unblock)
    webhook_secret = account_commands.add_parser(
        "webhook-secret",
        help="a new secret for the webhook URLs of the account's calls and batches, shown once "
        "(the one it replaces signs beside it for 24 hours)",
    )
    webhook_secret.add_argument("account", help="account id")
    webhook_secret.add_argument("--json", action="store_true", help="print JSON")
    webhook_secret.set_defaults(func=accounts_webhook_secret)
    numbers = account_commands.add_parser(
        "caller-ids", help="the numbers an account may call and text from"
    ).add_subparsers(required=True)
    for name, func, what in (
        ("add", caller_ids_add, "let the account call and text from a number it holds"),
        ("remove", caller_ids_remove, "take a number from the account"),
    ):
        command = numbers.add_parser(name, help=what)
        command.add_argument("account", help="account id")
        command.add_argument("number", help="E.164, e.g. +14155550100")
        command.set_defaults(func=func)
    listing = numbers.add_parser("list", help="the account's caller IDs")
    listing.add_argument("account", help="account id")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=caller_ids_list)

    stripe_events = commands.add_parser("events", help="Stripe events").add_subparsers(
        required=True
    )
    dead = stripe_events.add_parser(
        "dead", help="Stripe events given up after their last attempt, with the reason"
    )
    dead.add_argument("--json", action="store_true", help="print JSON")
    dead.set_defaults(func=events_dead)

    credits = commands.add_parser("credits", help="credits").add_subparsers(required=True)
    grant = credits.add_parser("grant", help="give an account credits (support)")
    grant.add_argument("account", help="account id")
    grant.add_argument("credits", type=int)
    grant.add_argument("--reason", required=True)
    grant.set_defaults(func=credits_grant)

    purge_command = commands.add_parser(
        "purge",
        help="empty Twilio's callback parameters, SMS bodies and Stripe event payloads created "
        "before a date, and delete the webhook deliveries over before it, as the hourly purge "
        "does after RETENTION_DAYS (the records and events stay)",
    )
    purge_command.add_argument(
        "--before", required=True, type=_moment, help="YYYY-MM-DD (UTC) or an ISO 8601 time"
    )
    purge_command.set_defaults(func=purge)

    keys = commands.add_parser("keys", help="API keys").add_subparsers(required=True)
    key_create = keys.add_parser("create", help="a new key for an account")
    key_create.add_argument("account", help="account id")
    key_create.add_argument("--json", action="store_true")
    key_create.set_defaults(func=keys_create)
    key_revoke = keys.add_parser("revoke", help="revoke a key")
    key_revoke.add_argument("prefix", help="the key's prefix (its first 12 characters)")
    key_revoke.set_defaults(func=keys_revoke)
