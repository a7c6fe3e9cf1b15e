"""Accounts and their API keys. A key is shown once, when it is made; only its hash is kept."""

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy.orm import Session

from shared.accounts import repository
from shared.billing import ledger
from shared.models import Account, ApiKey, utcnow

KEY_PREFIX_LENGTH = 12


class UnknownAccount(LookupError):
    pass


class UnknownKey(LookupError):
    pass


@dataclass(frozen=True)
class NewKey:
    api_key: ApiKey
    secret: str


def hash_key(secret: str) -> str:
    # Keys are 192 random bits, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(secret.encode()).hexdigest()


def create_account(session: Session, name: str, credits: int = 0) -> tuple[Account, NewKey]:
    account = Account(name=name)  # no credits until the ledger grants them
    session.add(account)
    session.flush()
    if credits:
        ledger.apply(
            session,
            ledger.Change(
                account.id, credits, "manual_grant", "account", account.id,
                reference=f"opening:{account.id}", note="credits given at creation",
            ),
        )  # fmt: skip
        session.refresh(account)
    return account, create_key(session, account.id)


def set_limits(
    session: Session,
    account_id: str,
    *,
    api_rate_per_second: float | None = None,
    api_burst: int | None = None,
    max_concurrent_calls: int | None = None,
) -> Account:
    """Override the settings' defaults for one account; a limit not given stays as it is."""
    account = repository.get_account(session, account_id)
    if account is None:
        raise UnknownAccount(account_id)
    if api_rate_per_second is not None:
        account.api_rate_per_second = api_rate_per_second
    if api_burst is not None:
        account.api_burst = api_burst
    if max_concurrent_calls is not None:
        account.max_concurrent_calls = max_concurrent_calls
    session.flush()
    return account


def create_key(session: Session, account_id: str) -> NewKey:
    if repository.get_account(session, account_id) is None:
        raise UnknownAccount(account_id)
    secret = "tg_" + secrets.token_urlsafe(24)
    api_key = ApiKey(
        account_id=account_id, prefix=secret[:KEY_PREFIX_LENGTH], key_hash=hash_key(secret)
    )
    session.add(api_key)
    session.flush()
    return NewKey(api_key=api_key, secret=secret)


def revoke_key(session: Session, prefix: str) -> ApiKey:
    api_key = repository.find_key_by_prefix(session, prefix[:KEY_PREFIX_LENGTH])
    if api_key is None:
        raise UnknownKey(prefix)
    if api_key.revoked_at is None:
        api_key.revoked_at = utcnow()
        session.flush()
    return api_key


def active_key(session: Session, secret: str) -> ApiKey | None:
    """The key, or None for a key that is unknown or revoked."""
    api_key = repository.find_key_by_hash(session, hash_key(secret))
    if api_key is None or api_key.revoked_at is not None:
        return None
    return api_key


def authenticate(session: Session, secret: str) -> Account | None:
    api_key = active_key(session, secret)
    return None if api_key is None else repository.get_account(session, api_key.account_id)
