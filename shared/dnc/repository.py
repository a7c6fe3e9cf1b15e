"""The lists' rows: one per list and number, and every change of them."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Result,
    String,
    any_,
    bindparam,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from shared.models import DncChange, DncEntry, new_id


def _on(account_id: str | None) -> ColumnElement[bool]:
    if account_id is None:
        return DncEntry.account_id.is_(None)
    return DncEntry.account_id == account_id


def _applies_to(account_id: str) -> ColumnElement[bool]:
    """The account's own list and the operators' list, which every account is bound by."""
    return or_(DncEntry.account_id == account_id, DncEntry.account_id.is_(None))


def entry(session: Session, account_id: str | None, number: str) -> DncEntry | None:
    """The number's row on this list, listed or not."""
    return session.scalar(select(DncEntry).where(_on(account_id), DncEntry.number == number))


def listed(session: Session, account_id: str, number: str) -> DncEntry | None:
    """The entry that keeps the account from calling or texting `number`: its own, else the
    global one. One look in the (number, account_id) index: it is on the dial path."""
    return session.scalar(
        select(DncEntry)
        .where(DncEntry.number == number, _applies_to(account_id), DncEntry.listed.is_(True))
        # The account's own entry first: its reason is the one the customer gave.
        .order_by(DncEntry.account_id.is_(None))
        .limit(1)
    )


def listed_among(session: Session, account_id: str, numbers: Sequence[str]) -> dict[str, DncEntry]:
    """Which of `numbers` the account may not call or text, each with the entry that keeps it
    from them (its own before the global one): one look for a whole batch."""
    if not numbers:
        return {}
    found: dict[str, DncEntry] = {}
    for row in session.scalars(
        select(DncEntry)
        .where(
            DncEntry.number == any_(bindparam("numbers", list(numbers), ARRAY(String))),
            _applies_to(account_id),
            DncEntry.listed.is_(True),
        )
        .order_by(DncEntry.account_id.is_(None))
    ):
        found.setdefault(row.number, row)
    return found


@dataclass(frozen=True, slots=True)
class Listed:
    """An entry a change put on its list: `new` when its row is, else listed again."""

    id: str
    number: str
    reason: str
    new: bool


# One statement for a whole import, its rows as arrays: a VALUES list of 100,000 rows has more
# parameters than the protocol carries, and costs more to build than to run.
_UPSERT = text(
    """
    INSERT INTO dnc_entries (id, account_id, number, listed, reason, source, changed_at,
                             created_at)
    SELECT u.id, CAST(:account_id AS varchar), u.number, true, u.reason, :source, :at, :at
    FROM unnest(CAST(:ids AS text[]), CAST(:numbers AS text[]), CAST(:reasons AS text[]))
        AS u(id, number, reason)
    ON CONFLICT (number, account_id) DO UPDATE
        SET listed = true, reason = excluded.reason, source = excluded.source,
            changed_at = excluded.changed_at
        WHERE NOT dnc_entries.listed
    RETURNING id, number, reason, xmax = 0
    """
)

_RECORD = text(
    """
    INSERT INTO dnc_changes (id, entry_id, action, reason, source, created_at)
    SELECT u.id, u.entry_id, :action, u.reason, :source, :at
    FROM unnest(CAST(:ids AS text[]), CAST(:entry_ids AS text[]), CAST(:reasons AS text[]))
        AS u(id, entry_id, reason)
    """
)


def upsert_listed(
    session: Session,
    account_id: str | None,
    rows: Sequence[tuple[str, str]],
    source: str,
    at: datetime,
) -> list[Listed]:
    """List each (number, reason), the numbers distinct, that is not listed yet: a new row, or
    an old one listed again. A number listed already is left as it is. Two transactions listing
    one number at once: the second waits for the first's row, then finds it listed."""
    if not rows:
        return []
    found = session.execute(
        _UPSERT,
        {
            "account_id": account_id,
            "source": source,
            "at": at,
            "ids": [new_id() for _ in rows],
            "numbers": [number for number, _ in rows],
            "reasons": [reason for _, reason in rows],
        },
    )
    return [Listed(*row) for row in found]


def record_changes(
    session: Session,
    action: str,
    changes: Sequence[tuple[str, str]],
    source: str,
    at: datetime,
) -> None:
    """The history rows of (entry id, reason) changed by one action from one source."""
    if not changes:
        return
    session.execute(
        _RECORD,
        {
            "action": action,
            "source": source,
            "at": at,
            "ids": [new_id() for _ in changes],
            "entry_ids": [entry_id for entry_id, _ in changes],
            "reasons": [reason for _, reason in changes],
        },
    )


def unlist(
    session: Session, account_id: str | None, number: str, reason: str, source: str, at: datetime
) -> DncEntry | None:
    """The entry, taken off its list; None when it was not on it."""
    return session.scalar(
        update(DncEntry)
        .where(_on(account_id), DncEntry.number == number, DncEntry.listed.is_(True))
        .values(listed=False, reason=reason, source=source, changed_at=at)
        .returning(DncEntry),
        execution_options={"synchronize_session": False, "populate_existing": True},
    )


def history(session: Session, entry_id: str) -> list[DncChange]:
    return list(
        session.scalars(
            select(DncChange)
            .where(DncChange.entry_id == entry_id)
            .order_by(DncChange.created_at, DncChange.id)
        )
    )


def page(
    session: Session, account_id: str | None, limit: int, offset: int
) -> tuple[list[DncEntry], int]:
    """The list's numbers now on it, latest change first, and how many there are."""
    where = [_on(account_id), DncEntry.listed.is_(True)]
    total = session.scalar(select(func.count()).select_from(DncEntry).where(*where)) or 0
    rows = session.scalars(
        select(DncEntry)
        .where(*where)
        .order_by(DncEntry.changed_at.desc(), DncEntry.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(rows), total


def with_history(session: Session, account_id: str | None) -> Result[Any]:
    """Every change of every number the list has had, by number then time: rows of (number,
    listed now, action, reason, source, at), streamed."""
    return session.execute(
        select(
            DncEntry.number,
            DncEntry.listed,
            DncChange.action,
            DncChange.reason,
            DncChange.source,
            DncChange.created_at,
        )
        .join(DncChange, DncChange.entry_id == DncEntry.id)
        .where(_on(account_id))
        .order_by(DncEntry.number, DncChange.created_at, DncChange.id)
        .execution_options(yield_per=5_000)
    )
