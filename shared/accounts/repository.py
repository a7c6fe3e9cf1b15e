from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.models import Account, ApiKey


def get_account(session: Session, account_id: str) -> Account | None:
    return session.get(Account, account_id)


def find_key_by_hash(session: Session, key_hash: str) -> ApiKey | None:
    return session.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash))


def find_key_by_prefix(session: Session, prefix: str) -> ApiKey | None:
    return session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
