"""The account's events: what happened to its calls, SMS, batches and credits, newest first."""

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.exceptions import RequestValidationError

from api.deps import CurrentAccount, SessionDep
from api.paging import Limit
from api.routing import ApiRoute
from shared.dnc import service as dnc
from shared.events import repository, types
from shared.events.schemas import EventOut, EventPage
from shared.schemas import Line, Moment
from shared.telephony.numbers import InvalidNumber

router = APIRouter(tags=["events"], route_class=ApiRoute)


def _patterns(raw: list[str]) -> list[str]:
    """Types or wildcards, each given on its own or several comma-separated: one that selects
    no type is refused, as a misspelt filter would otherwise answer an empty page."""
    patterns = [part.strip() for each in raw for part in each.split(",") if part.strip()]
    unknown = [pattern for pattern in patterns if not types.known_pattern(pattern)]
    if unknown:
        raise RequestValidationError(
            [
                {
                    "loc": ("query", "type"),
                    "msg": f"no event type matches {', '.join(map(repr, unknown))}; the types: "
                    + ", ".join(types.ALL),
                    "type": "value_error",
                    "input": None,
                }
            ]
        )
    return patterns


def _number(raw: str) -> str:
    """E.164, as refusals keep it: +1 415 555 2671 and (415) 555-2671 find the same ones."""
    try:
        return dnc.parse(raw)
    except InvalidNumber as exc:
        raise RequestValidationError(
            [{"loc": ("query", "number"), "msg": str(exc), "type": "value_error", "input": None}]
        ) from None


@router.get("/events", response_model=EventPage, summary="The account's events, newest first")
def list_events(
    session: SessionDep,
    account: CurrentAccount,
    type_: Annotated[
        list[Line],
        Query(
            alias="type",
            description="event types or wildcards (call.*), repeated or comma-separated",
        ),
    ] = [],  # noqa: B006 - FastAPI copies a parameter's default
    subject: Annotated[Line | None, Query(description="a call's, SMS's or batch's id")] = None,
    number: Annotated[
        Line | None,
        Query(description="a number's refused single calls and SMS (call.refused, sms.refused)"),
    ] = None,
    since: Annotated[Moment | None, Query(description="only events at or after this time")] = (
        None
    ),
    cursor: Annotated[Line | None, Query(description="the nextCursor of the page before")] = None,
    limit: Limit = 50,
) -> EventPage:
    events, more = repository.page(
        session,
        account.id,
        patterns=_patterns(type_),
        subject_id=subject,
        number=None if number is None else _number(number),
        since=since,
        before_id=cursor,
        limit=limit,
    )
    return EventPage(
        items=[repository.out(event) for event in events],
        nextCursor=events[-1].id if more else None,
    )


@router.get("/events/{event_id}", response_model=EventOut, summary="One event")
def get_event(event_id: Line, session: SessionDep, account: CurrentAccount) -> EventOut:
    event = repository.get_for_account(session, account.id, event_id)
    if event is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"event {event_id!r} not found")
    return repository.out(event)
