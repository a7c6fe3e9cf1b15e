from datetime import datetime

from pydantic import BaseModel, Field

from shared.schemas import Line, PhoneNumber

REASON_MAX_LENGTH = 500
Reason = Line


class DncAdd(BaseModel):
    number: PhoneNumber = Field(description="E.164, or national in DEFAULT_REGION")
    reason: Reason = Field(min_length=1, max_length=REASON_MAX_LENGTH)


class DncEntryOut(BaseModel):
    """A number on the list, as its last change left it: the event's data too."""

    number: str = Field(description="E.164")
    listed: bool
    reason: str = Field(description="of the last add or removal")
    source: str = Field(description="api, csv, sms_keyword, keypress, operator or carrier_21610")
    changedAt: datetime


class DncPage(BaseModel):
    items: list[DncEntryOut] = Field(description="the numbers on the list, latest added first")
    total: int
    limit: int
    offset: int


class DncChangeOut(BaseModel):
    action: str = Field(description="added or removed")
    reason: str
    source: str
    at: datetime


class DncRefusalOut(BaseModel):
    event: str = Field(description="the refusal's event id (GET /api/events/{id})")
    type: str = Field(description="call.refused or sms.refused")
    list: str = Field(description="account or global: the list the number was on")
    reason: str = Field(description="the 422's message")
    at: datetime


class DncNumberOut(BaseModel):
    number: str
    listed: bool = Field(description="on the account's own list")
    globallyListed: bool = Field(
        description="on the operators' list, which binds every account: never called or texted"
    )
    reason: str | None = Field(description="of the last change of the account's entry")
    source: str | None
    changedAt: datetime | None
    history: list[DncChangeOut] = Field(description="the account's adds and removals, oldest first")
    refused: list[DncRefusalOut] = Field(
        default_factory=list,
        description="the account's single calls and SMS to the number refused at acceptance, "
        "newest first, at most 20 (all of them: GET /api/events?subject=<number>)",
    )


class DncRemoved(BaseModel):
    number: str
    listed: bool


class ImportRejected(BaseModel):
    row: int = Field(
        description="1 for a JSON array's first item; a CSV's rows as a spreadsheet numbers "
        "them (a header is row 1)"
    )
    value: str
    reason: str


class ImportResult(BaseModel):
    added: int = Field(description="numbers put on the list by this import")
    alreadyListed: int
    duplicates: int = Field(description="rows repeating a number of an earlier row")
    rejected: list[ImportRejected]
