"""Do-not-contact lists: an account's numbers never to call or text, and the operators' list
(account None) that binds every account.

The one rule for every path that calls or texts: a request is refused at acceptance for a
listed number (a batch's row is rejected), and a call or SMS accepted before its number was
listed ends `suppressed` at the fence, its last look before the create request. A change
commits with its history row and, for an account's list, its event (dnc.added, dnc.removed):
an add that has committed when the fence looks wins; one still uncommitted then does not, and
binds the next call.

An operator's change of the global list appends no event: it belongs to no account, and one
event per account for each would flood every account's webhooks. Its history is kept as an
account's is, and `toingg dnc list --global` shows it.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import Result
from sqlalchemy.orm import Session

from shared import events
from shared.accounts import service as accounts_service
from shared.config import get_settings
from shared.dnc import refusals, repository, sources
from shared.dnc.schemas import DncEntryOut, ImportRejected
from shared.events import types
from shared.models import Account, DncChange, DncEntry, utcnow
from shared.telephony.numbers import InvalidNumber, to_e164

# What a call or an SMS ended at the fence records as its error code.
LISTED_CODE = "do-not-contact"
_JSON_TIME = TypeAdapter(datetime)


class NotListed(LookupError):
    pass


class OnTheList(ValueError):
    """A call or an SMS to a number the account may not contact: the number, and the entry's
    listing as its refusal's event keeps it (refusals.rule)."""

    code = LISTED_CODE

    def __init__(self, text: str, number: str, rule: dict[str, Any]) -> None:
        super().__init__(text)
        self.number = number
        self.rule = rule


class UnknownSource(ValueError):
    pass


def parse(raw: str) -> str:
    """E.164, as every number is kept: InvalidNumber naming the input otherwise."""
    return to_e164(raw, get_settings().DEFAULT_REGION)


def refusal_text(number: str, entry: DncEntry) -> str:
    """Why a call or an SMS to `number` is refused, for the 422 and the suppressed message."""
    if entry.account_id is None:
        return f"{number} is on the operators' do-not-contact list"
    return f"{number} is on this account's do-not-contact list (GET /api/dnc/{number})"


def suppression_text(number: str, entry: DncEntry) -> str:
    """Why a call or an SMS accepted before its number was listed is not sent: what the list
    says, and the entry's listing (when, from where, why), so the event of the suppression
    keeps them."""
    at = entry.changed_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{refusal_text(number, entry)}: listed {at} by {entry.source}, {entry.reason!r}"


def listed(session: Session, account_id: str, number: str) -> DncEntry | None:
    """The entry keeping the account from calling or texting `number` (E.164): the account's
    own, else the global list's; None when it may."""
    return repository.listed(session, account_id, number)


def ensure_not_listed(session: Session, account_id: str, number: str) -> None:
    """Raises OnTheList, saying which list, when the account may not contact `number`."""
    found = listed(session, account_id, number)
    if found is not None:
        raise OnTheList(refusal_text(number, found), number, refusals.rule(found))


def listed_among(session: Session, account_id: str, numbers: Sequence[str]) -> dict[str, DncEntry]:
    """Which of `numbers` (E.164) the account may not call or text, with the entry of each."""
    return repository.listed_among(session, account_id, numbers)


def shown(entry: DncEntry) -> DncEntryOut:
    return DncEntryOut(
        number=entry.number,
        listed=entry.listed,
        reason=entry.reason,
        source=entry.source,
        changedAt=entry.changed_at,
    )


def _check(session: Session, account_id: str | None, source: str) -> None:
    if source not in sources.ALL:
        raise UnknownSource(f"{source!r} is not one of {', '.join(sources.ALL)}")
    if account_id is not None and session.get(Account, account_id) is None:
        raise accounts_service.UnknownAccount(account_id)


def add(
    session: Session, account_id: str | None, number: str, reason: str, source: str
) -> DncEntry:
    """Put `number` (E.164 or national) on the account's list, or the global list (None). A
    number listed already is left as it is, its first reason kept. Raises InvalidNumber."""
    _check(session, account_id, source)
    e164 = parse(number)
    while True:
        _list(session, account_id, [(e164, reason)], source)
        found = repository.entry(session, account_id, e164)
        if found is not None and found.listed:
            return found
        # Listed by another transaction, and taken off by a third since: list it again.


def remove(
    session: Session, account_id: str | None, number: str, reason: str, source: str
) -> DncEntry:
    """Take `number` off the list; its history keeps the add and this removal. Raises
    NotListed, InvalidNumber."""
    _check(session, account_id, source)
    e164 = parse(number)
    at = utcnow()
    entry = repository.unlist(session, account_id, e164, reason, source, at)
    if entry is None:
        raise NotListed(e164)
    repository.record_changes(session, sources.REMOVED, [(entry.id, reason)], source, at)
    if account_id is not None:
        events.append(session, account_id, types.DNC_REMOVED, types.DNC, entry.id, shown(entry))
    return entry


@dataclass
class Imported:
    changed: list[repository.Listed] = field(default_factory=list)
    already_listed: int = 0
    duplicates: int = 0
    rejected: list[ImportRejected] = field(default_factory=list)


def import_rows(
    session: Session,
    account_id: str | None,
    rows: Sequence[tuple[int, str, str]],
    source: str,
) -> Imported:
    """List every valid (row number, number, reason); reject each invalid row with why. One
    statement for the entries, one for their history, one for their events."""
    _check(session, account_id, source)
    region = get_settings().DEFAULT_REGION
    rejected: list[ImportRejected] = []
    wanted: dict[str, str] = {}
    duplicates = 0
    for row, raw, reason in rows:
        try:
            number = to_e164(raw, region)
        except InvalidNumber as exc:
            rejected.append(ImportRejected(row=row, value=raw, reason=str(exc)))
            continue
        if number in wanted:
            duplicates += 1
            continue
        wanted[number] = reason
    result = _list(session, account_id, list(wanted.items()), source)
    result.already_listed = len(wanted) - len(result.changed)
    result.duplicates = duplicates
    result.rejected = rejected
    return result


def _list(
    session: Session, account_id: str | None, rows: Sequence[tuple[str, str]], source: str
) -> Imported:
    at = utcnow()
    changed = repository.upsert_listed(session, account_id, rows, source, at)
    repository.record_changes(
        session, sources.ADDED, [(row.id, row.reason) for row in changed], source, at
    )
    if account_id is not None and changed:
        # The entries as GET shows them, without an ORM object or a model each: an import of
        # 100,000 numbers appends as many events in its request.
        when = _JSON_TIME.dump_python(at, mode="json")
        drafts = [
            (
                row.new,
                events.Draft(
                    account_id,
                    types.DNC_ADDED,
                    types.DNC,
                    row.id,
                    {
                        "number": row.number,
                        "listed": True,
                        "reason": row.reason,
                        "source": source,
                        "changedAt": when,
                    },
                ),
            )
            for row in changed
        ]
        # Entries made just now have no events yet: numbered without a look at the log.
        events.append_first(session, [draft for new, draft in drafts if new])
        events.append_many(session, [draft for new, draft in drafts if not new])
    return Imported(changed=changed)


def entry(session: Session, account_id: str | None, number: str) -> DncEntry | None:
    return repository.entry(session, account_id, number)


def history(session: Session, entry: DncEntry) -> list[DncChange]:
    return repository.history(session, entry.id)


def page(
    session: Session, account_id: str | None, limit: int, offset: int
) -> tuple[list[DncEntry], int]:
    return repository.page(session, account_id, limit, offset)


def with_history(session: Session, account_id: str | None) -> Result[Any]:
    return repository.with_history(session, account_id)
