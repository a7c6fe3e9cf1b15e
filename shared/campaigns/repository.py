from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from shared.models import Call, Campaign, Script


def get_by_name(
    session: Session, account_id: str, name: str, *, for_new_calls: bool = False
) -> Campaign | None:
    """for_new_calls: locked FOR KEY SHARE until the transaction ends, as the calls' foreign
    key would lock it, so a delete waits for the calls (or they for the delete, and find no
    campaign); edits of its script or limits are not held up."""
    query = select(Campaign).where(Campaign.account_id == account_id, Campaign.name == name)
    if for_new_calls:
        query = query.with_for_update(read=True, key_share=True)
    return session.scalar(query)


def get(session: Session, account_id: str, campaign_id: str) -> Campaign | None:
    return session.scalar(
        select(Campaign).where(Campaign.account_id == account_id, Campaign.id == campaign_id)
    )


def list_page(session: Session, account_id: str, limit: int, offset: int) -> list[Campaign]:
    return list(
        session.scalars(
            select(Campaign)
            .where(Campaign.account_id == account_id)
            .order_by(Campaign.created_at, Campaign.id)
            .limit(limit)
            .offset(offset)
        )
    )


def count(session: Session, account_id: str) -> int:
    return (
        session.scalar(
            select(func.count()).select_from(Campaign).where(Campaign.account_id == account_id)
        )
        or 0
    )


def lock(session: Session, campaign_id: str) -> bool:
    """The campaign locked FOR UPDATE until the transaction ends; False if it is gone."""
    query = select(Campaign.id).where(Campaign.id == campaign_id).with_for_update()
    return session.scalar(query) is not None


def has_calls(session: Session, campaign_id: str) -> bool:
    return bool(session.scalar(select(exists().where(Call.campaign_id == campaign_id))))


def script_id(session: Session, account_id: str, digest: str) -> str | None:
    return session.scalar(
        select(Script.id).where(Script.account_id == account_id, Script.digest == digest)
    )


def script_text(session: Session, script_id: str) -> str:
    return session.execute(select(Script.text).where(Script.id == script_id)).scalar_one()
