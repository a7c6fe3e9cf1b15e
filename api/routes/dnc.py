"""The account's do-not-contact list: numbers never called or texted, with their history."""

import csv
import io
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError

from api import strict_json
from api.deps import CurrentAccount, SessionDep
from api.errors import invalid_field
from api.paging import Limit, Offset
from api.routing import MAX_JSON_VALUES, ApiRoute, too_many_values
from shared.dnc import refusals, sources
from shared.dnc import service as dnc
from shared.dnc.schemas import (
    REASON_MAX_LENGTH,
    DncAdd,
    DncChangeOut,
    DncEntryOut,
    DncNumberOut,
    DncPage,
    DncRefusalOut,
    DncRemoved,
    ImportRejected,
    ImportResult,
)
from shared.schemas import Line, text_problem
from shared.telephony.numbers import InvalidNumber

router = APIRouter(tags=["do-not-contact"], route_class=ApiRoute)

MAX_IMPORT_ROWS = 100_000
# The reason of an imported row that gives none.
IMPORTED = "imported"


def _number(raw: str, loc: list[str | int]) -> str:
    try:
        return dnc.parse(raw)
    except InvalidNumber as exc:
        raise invalid_field(loc, str(exc)) from None


@router.get("/dnc", response_model=DncPage, summary="The numbers on the account's list")
def list_dnc(
    session: SessionDep, account: CurrentAccount, limit: Limit = 50, offset: Offset = 0
) -> DncPage:
    entries, total = dnc.page(session, account.id, limit, offset)
    return DncPage(
        items=[dnc.shown(entry) for entry in entries], total=total, limit=limit, offset=offset
    )


@router.post(
    "/dnc",
    response_model=DncEntryOut,
    status_code=status.HTTP_201_CREATED,
    summary="Put a number on the list (a number listed already keeps its first reason)",
)
def add_dnc(body: DncAdd, session: SessionDep, account: CurrentAccount) -> DncEntryOut:
    number = _number(body.number, ["number"])
    return dnc.shown(dnc.add(session, account.id, number, body.reason, sources.API))


# --- import: a JSON array, or a CSV file ---------------------------------------------------


class _Rows:
    def __init__(
        self, rows: list[tuple[int, str, str]], rejected: list[ImportRejected], source: str
    ):
        self.rows = rows
        self.rejected = rejected
        self.source = source


def _too_many(loc: tuple[str, ...], count: int) -> RequestValidationError:
    return RequestValidationError(
        [
            {
                "loc": loc,
                "msg": f"at most {MAX_IMPORT_ROWS:,} rows in one import, not {count:,}",
                "type": "value_error",
                "input": None,
            }
        ]
    )


def _checked_row(
    row: int,
    number: object,
    reason: object,
    rows: list[tuple[int, str, str]],
    rejected: list[ImportRejected],
) -> None:
    if not isinstance(number, str):
        rejected.append(
            ImportRejected(
                row=row, value=repr(number)[:100], reason="number: give the number as text"
            )
        )
        return
    if not isinstance(reason, str):
        rejected.append(
            ImportRejected(row=row, value=number[:100], reason="reason: give the reason as text")
        )
        return
    for name, text in (("number", number), ("reason", reason)):
        problem = None if text.isprintable() else text_problem(text)
        if problem is not None:
            shown = number if name == "reason" and number.isprintable() else ""
            rejected.append(ImportRejected(row=row, value=shown[:100], reason=f"{name}: {problem}"))
            return
    if len(reason) > REASON_MAX_LENGTH:
        rejected.append(
            ImportRejected(
                row=row,
                value=number[:100],
                reason=f"reason: longer than {REASON_MAX_LENGTH} characters",
            )
        )
        return
    rows.append((row, number, reason.strip() or IMPORTED))


def _from_json(body: bytes) -> _Rows:
    if too_many_values(body):
        raise invalid_field([], f"the JSON body holds more than {MAX_JSON_VALUES:,} values")
    try:
        value = strict_json.loads(body)
    except strict_json.Refused as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    except (ValueError, RecursionError):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "the body is not JSON") from None
    if not isinstance(value, list):
        raise invalid_field([], 'give a JSON array of numbers, or of {"number", "reason"} objects')
    if len(value) > MAX_IMPORT_ROWS:
        raise _too_many(("body",), len(value))
    rows: list[tuple[int, str, str]] = []
    rejected: list[ImportRejected] = []
    for index, item in enumerate(value, start=1):
        if isinstance(item, dict):
            extra = set(item) - {"number", "reason"}
            if extra or "number" not in item:
                why = f"unknown field {sorted(extra)[0]!r}" if extra else "number: missing"
                rejected.append(
                    ImportRejected(row=index, value=str(item.get("number", ""))[:100], reason=why)
                )
                continue
            _checked_row(index, item["number"], item.get("reason", IMPORTED), rows, rejected)
        else:
            _checked_row(index, item, IMPORTED, rows, rejected)
    return _Rows(rows, rejected, sources.API)


def _from_csv(data: bytes) -> _Rows:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise invalid_field(["file"], "the file is not UTF-8 text") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[tuple[int, str, str]] = []
    rejected: list[ImportRejected] = []
    number_at, reason_at = 0, 1
    try:
        # Numbered as a spreadsheet numbers its rows: a header is row 1.
        for index, cells in enumerate(reader, start=1):
            if index == 1 and cells and "number" in (c.strip().lower() for c in cells):
                # A header: the columns are found by name, in any order.
                names = [c.strip().lower() for c in cells]
                number_at = names.index("number")
                reason_at = names.index("reason") if "reason" in names else -1
                continue
            if not cells or not any(c.strip() for c in cells):
                continue
            if len(rows) + len(rejected) >= MAX_IMPORT_ROWS:
                raise _too_many(("body", "file"), MAX_IMPORT_ROWS + 1)
            number = cells[number_at].strip() if number_at < len(cells) else ""
            reason = cells[reason_at] if 0 <= reason_at < len(cells) else IMPORTED
            _checked_row(index, number, reason, rows, rejected)
    except csv.Error as exc:
        raise invalid_field(["file"], f"not CSV at line {reader.line_num}: {exc}") from None
    return _Rows(rows, rejected, sources.CSV)


async def _import_rows(request: Request) -> _Rows:
    content_type = request.headers.get("content-type", "")
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/json":
        return _from_json(await request.body())
    if kind == "multipart/form-data":
        async with request.form(max_files=1, max_fields=2) as form:
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise invalid_field(["file"], "upload the CSV as the form's file field")
            return _from_csv(await upload.read())
    raise HTTPException(
        status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
        "send a JSON array (application/json) or a CSV file (multipart/form-data, field file)",
    )


_IMPORT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "array",
                    "maxItems": MAX_IMPORT_ROWS,
                    "items": {
                        "oneOf": [
                            {"type": "string", "description": "a number"},
                            {
                                "type": "object",
                                "properties": {
                                    "number": {"type": "string"},
                                    "reason": {"type": "string", "maxLength": REASON_MAX_LENGTH},
                                },
                                "required": ["number"],
                            },
                        ]
                    },
                }
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "CSV: number,reason (a header row optional)",
                        }
                    },
                    "required": ["file"],
                }
            },
        },
    }
}


@router.post(
    "/dnc/import",
    response_model=ImportResult,
    summary="Put many numbers on the list: a JSON array, or a CSV file of number,reason",
    openapi_extra=_IMPORT_BODY,
)
def import_dnc(
    parsed: Annotated[_Rows, Depends(_import_rows)], session: SessionDep, account: CurrentAccount
) -> ImportResult:
    imported = dnc.import_rows(session, account.id, parsed.rows, parsed.source)
    rejected = sorted([*parsed.rejected, *imported.rejected], key=lambda r: r.row)
    return ImportResult(
        added=len(imported.changed),
        alreadyListed=imported.already_listed,
        duplicates=imported.duplicates,
        rejected=rejected,
    )


# A cell a spreadsheet would run as a formula: a reason may be text a stranger sent (an opt-out
# by SMS), and the export is opened by the account's staff.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _as_text(cell: str) -> str:
    return "'" + cell if cell.startswith(_FORMULA_STARTS) else cell


@router.get(
    "/dnc/export",
    summary="The list with its history, as CSV: a row per add and removal",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
)
def export_dnc(session: SessionDep, account: CurrentAccount) -> Response:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["number", "listed", "action", "reason", "source", "at"])
    for number, listed, action, reason, source, at in dnc.with_history(session, account.id):
        writer.writerow(
            [
                number,
                "true" if listed else "false",
                action,
                _as_text(reason),
                source,
                at.isoformat(),
            ]
        )
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="dnc.csv"'},
    )


@router.get("/dnc/{number}", response_model=DncNumberOut, summary="A number's state and history")
def get_dnc(number: Line, session: SessionDep, account: CurrentAccount) -> DncNumberOut:
    e164 = _path_number(number)
    entry = dnc.entry(session, account.id, e164)
    found = dnc.entry(session, None, e164)
    return DncNumberOut(
        number=e164,
        listed=entry is not None and entry.listed,
        globallyListed=found is not None and found.listed,
        reason=entry.reason if entry else None,
        source=entry.source if entry else None,
        changedAt=entry.changed_at if entry else None,
        history=[
            DncChangeOut(action=c.action, reason=c.reason, source=c.source, at=c.created_at)
            for c in (dnc.history(session, entry) if entry else [])
        ],
        refused=[
            DncRefusalOut(
                event=e.id,
                type=e.type,
                list=e.data["list"],
                reason=e.data["reason"],
                at=e.created_at,
            )
            for e in refusals.recent(session, account.id, e164)
        ],
    )


@router.delete("/dnc/{number}", response_model=DncRemoved, summary="Take a number off the list")
def remove_dnc(
    number: Line,
    session: SessionDep,
    account: CurrentAccount,
    reason: Annotated[
        Line, Query(min_length=1, max_length=REASON_MAX_LENGTH)
    ] = "removed by the account",
) -> DncRemoved:
    e164 = _path_number(number)
    try:
        entry = dnc.remove(session, account.id, e164, reason, sources.API)
    except dnc.NotListed:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{e164} is not on the list") from None
    return DncRemoved(number=entry.number, listed=entry.listed)


def _path_number(raw: str) -> str:
    try:
        return dnc.parse(raw)
    except InvalidNumber as exc:
        raise RequestValidationError(
            [{"loc": ("path", "number"), "msg": str(exc), "type": "value_error", "input": None}]
        ) from None
