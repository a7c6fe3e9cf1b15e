"""Calls and SMS refused at acceptance because their number is listed, kept as events
(call.refused, sms.refused): what was refused, by which rule and listing, when, and from where.

A single call's or SMS's refusal has no row of its own: it is its own subject (type `refusal`,
a new id), found by the number in its data. Not the number as subject: events are numbered per
subject across accounts, so an account's sequence would count the other accounts' refusals.

A batch's listed rows make one event for the batch, naming at most MAX_NUMBERS of them and how
many there were: a list of 100,000 numbers all listed would otherwise append as many events in
its request.
"""

from collections.abc import Sequence
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import ColumnElement, String, literal_column, select
from sqlalchemy.orm import Session

from shared import events
from shared.dnc import sources
from shared.events import types
from shared.models import DncEntry, Event, utcnow

RULE = "do-not-contact"
# The batch's listed rows its event names; the count says how many there were.
MAX_NUMBERS = 100
ACCOUNT_LIST = "account"
GLOBAL_LIST = "global"
_JSON_TIME = TypeAdapter(Any)


def rule(entry: DncEntry) -> dict[str, Any]:
    """The rule a refusal was made under: which list, and the entry's listing."""
    return {
        "rule": RULE,
        "list": GLOBAL_LIST if entry.account_id is None else ACCOUNT_LIST,
        "listedAt": _JSON_TIME.dump_python(entry.changed_at, mode="json"),
        "listedBy": entry.source,
        "listedFor": entry.reason,
    }


def refused(
    session: Session,
    account_id: str,
    event_type: str,
    number: str,
    reason: str,
    why: dict[str, Any],
    subject_id: str,
) -> Event:
    """A single call's (call.refused) or SMS's (sms.refused) refusal, its own subject (a new
    id, or one a request's retries share, see `written`)."""
    return events.append(
        session,
        account_id,
        event_type,
        types.REFUSAL,
        subject_id,
        {
            "number": number,
            "reason": reason,
            **why,
            "refusedAt": _JSON_TIME.dump_python(utcnow(), mode="json"),
            "source": sources.API,
        },
    )


def written(session: Session, subject_type: str, subject_id: str) -> bool:
    """Whether the refusal of the subject is kept already (a retry of a refused request)."""
    return (
        session.scalar(
            select(Event.id)
            .where(Event.subject_type == subject_type, Event.subject_id == subject_id)
            .limit(1)
        )
        is not None
    )


def recent(session: Session, account_id: str, number: str, limit: int = 20) -> list[Event]:
    """The account's refusals of single calls and SMS to `number`, newest first."""
    return list(
        session.scalars(
            select(Event)
            .where(
                Event.account_id == account_id,
                Event.subject_type == types.REFUSAL,
                of_number(number),
            )
            .order_by(Event.id.desc())
            .limit(limit)
        )
    )


def of_number(number: str) -> ColumnElement[bool]:
    """Refusals of `number`, as the (account_id, number, id DESC) index on refusals reads them."""
    # Written out, not data["number"]: a bound key would not match the index's expression.
    return literal_column("events.data ->> 'number'", String) == number


def batch_refused(
    session: Session,
    account_id: str,
    batch_id: str,
    rows: Sequence[tuple[int, str, dict[str, Any]]],
) -> Event:
    """A batch's rows (index, number, rule) refused for their listed numbers: one call.refused
    for the batch."""
    return events.append(
        session,
        account_id,
        types.CALL_REFUSED,
        types.BATCH,
        batch_id,
        {
            "batchId": batch_id,
            "reason": f"{len(rows)} of the batch's numbers are on a do-not-contact list",
            "rule": RULE,
            "count": len(rows),
            "rows": [
                {"index": index, "number": number, **why}
                for index, number, why in rows[:MAX_NUMBERS]
            ],
            "truncated": len(rows) > MAX_NUMBERS,
            "refusedAt": _JSON_TIME.dump_python(utcnow(), mode="json"),
            "source": sources.API,
        },
    )
