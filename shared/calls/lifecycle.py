"""The one place a call's status changes: each move is a conditional UPDATE that the machine
(`status.allowed`) permits, and appends the call's event in the same transaction.

The guard is in the UPDATE itself: of two moves at once, the second waits for the first's row
lock, then PostgreSQL checks the WHERE again on the row the first left, so a call never makes a
move the machine refuses, whatever order concurrent writers commit in. The row stays locked
until commit, so the call's events are numbered in the order its moves committed. The many-call
form takes its rows in id order (`repository.locking`), as every statement that changes many
calls does, so two of them never wait for one another in a circle.
"""

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import ColumnElement, insert, update
from sqlalchemy.orm import Session

from shared import events
from shared.calls import status as st
from shared.calls import views
from shared.events import types
from shared.models import Call, utcnow

# A batch's own status may follow from its calls' (completed, waiting for credits) once they
# reach one of these.
_BATCH_FOLLOWS = frozenset({*st.FINAL, st.INSUFFICIENT_CREDITS, st.QUEUED, st.SCHEDULED})


# Rows of a batch's calls per INSERT, and their events'.
INSERT_CHUNK = 5_000
_JSON_TIME = TypeAdapter(datetime)


def _first_status(not_before: datetime | None) -> str:
    """A new call waits for its hours (or its startAt) when it has a moment to wait for."""
    return st.QUEUED if not_before is None else st.SCHEDULED


def accept(session: Session, call: Call) -> None:
    """A new call, queued or scheduled, with its first event."""
    call.status = _first_status(call.not_before)
    session.add(call)
    session.flush()
    _appended(session, [call], views.out_many(session, [call]))


def accept_rows(session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
    """A batch's new calls, inserted as rows, queued or scheduled, with their first events:
    shown without reading them back (a new call has nothing in its timeline but its
    queueing)."""
    queued = [{**row, "status": _first_status(row.get("not_before"))} for row in rows]
    event_types = {s: types.for_status(types.CALL, s) for s in (st.QUEUED, st.SCHEDULED)}
    times: dict[Any, str] = {}
    for start in range(0, len(queued), INSERT_CHUNK):
        chunk = queued[start : start + INSERT_CHUNK]
        session.execute(insert(Call), chunk)
        drafts = []
        for row in chunk:
            if row["created_at"] not in times:
                times[row["created_at"]] = _JSON_TIME.dump_python(row["created_at"], mode="json")
            shown = views.shown_new(row, times[row["created_at"]])
            event_type = event_types[row["status"]]
            drafts.append(events.Draft(row["account_id"], event_type, types.CALL, row["id"], shown))
        # Calls inserted just now: their first events need no look for numbers taken.
        events.append_first(session, drafts)


def move(
    session: Session,
    call_id: str,
    new_status: str,
    *where: ColumnElement[bool],
    **values: Any,
) -> Call | None:
    """Move the call to `new_status` where the machine allows it from the status it has and
    `where` holds, with `values` set alongside. The call as it is now, or None when it did not
    move."""
    moved = _update(session, [Call.id == call_id, *where], new_status, values)
    return moved[0] if moved else None


def move_many(
    session: Session,
    where: Sequence[ColumnElement[bool]],
    new_status: str,
    **values: Any,
) -> list[Call]:
    """Move every call matching `where` that the machine allows to `new_status`, in one
    UPDATE ... RETURNING, its rows taken in id order; returns the calls moved."""
    from shared.calls.repository import locking  # the repository reads calls; this writes them

    allowed = Call.status.in_(st.before(new_status))
    return _update(session, [Call.id.in_(locking(*where, allowed))], new_status, values)


def _update(
    session: Session,
    where: Sequence[ColumnElement[bool]],
    new_status: str,
    values: Mapping[str, Any],
) -> list[Call]:
    moved = list(
        session.scalars(
            update(Call)
            .where(*where, Call.status.in_(st.before(new_status)))
            .values(status=new_status, **{"updated_at": utcnow(), **values})
            .returning(Call),
            execution_options={"synchronize_session": False, "populate_existing": True},
        )
    )
    if moved:
        _appended(session, moved, views.out_many(session, moved))
    return moved


def _appended(session: Session, calls: Sequence[Call], shown: Sequence[Any]) -> None:
    events.append_many(
        session,
        [
            events.Draft(
                call.account_id,
                types.for_status(types.CALL, call.status),
                types.CALL,
                call.id,
                out,
            )
            for call, out in zip(calls, shown, strict=True)
        ],
    )
    for call in calls:
        if call.batch_id is not None and call.status in _BATCH_FOLLOWS:
            _follow_batch(session, call.batch_id)


def _follow_batch(session: Session, batch_id: str) -> None:
    # Imported here: a batch's lifecycle cancels its calls through this module.
    from shared.batches import lifecycle as batch_lifecycle

    batch_lifecycle.follow_on_commit(session, batch_id)
