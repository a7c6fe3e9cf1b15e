from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from shared.schemas import (
    CalleeName,
    CampaignName,
    OffsetTime,
    PhoneNumber,
    Script,
    TimeZoneName,
    check_not_after,
)
from shared.webhooks.schemas import Url

WEBHOOK = (
    "http:// or https://: this call's events go there too, signed with the account's secret "
    "for such URLs (`toingg accounts webhook-secret`)"
)


class _When(BaseModel):
    """When the call may be placed, besides its campaign's hours."""

    timezone: TimeZoneName | None = Field(
        default=None, description="the recipient's IANA time zone; default: from the number"
    )
    startAt: OffsetTime | None = Field(
        default=None, description="not before this (ISO 8601 with an offset)"
    )
    notAfter: OffsetTime | None = Field(
        default=None, description="not placed by then: the call ends expired"
    )

    @field_validator("notAfter")
    @classmethod
    def _after_start(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        return check_not_after(value, info.data.get("startAt"))


class MakeCallRequest(_When):
    model_config = ConfigDict(
        coerce_numbers_to_str=True,
        json_schema_extra={
            "examples": [
                {"campaign": "welcome", "name": "John Doe", "phoneNumber": "(415) 555-2671"}
            ]
        },
    )

    campaign: CampaignName
    name: CalleeName = ""
    phoneNumber: PhoneNumber
    webhook: Url | None = Field(default=None, description=WEBHOOK)


class MakeCallDetailsRequest(_When):
    model_config = ConfigDict(
        coerce_numbers_to_str=True,
        json_schema_extra={
            "examples": [
                {
                    "campaignName": "MyCampaign",
                    "campaignScript": "Hello {name}, this is a test call.",
                    "name": "John Doe",
                    "phoneNumber": "+14155552671",
                }
            ]
        },
    )

    campaignName: CampaignName
    campaignScript: Script
    name: CalleeName = ""
    phoneNumber: PhoneNumber
    webhook: Url | None = Field(default=None, description=WEBHOOK)


class CallAccepted(BaseModel):
    callId: str
    status: str
    phoneNumber: str
    campaign: str


class TimelineStep(BaseModel):
    status: str
    at: datetime
    sequenceNumber: int | None = None


class CallError(BaseModel):
    code: str | None
    message: str | None


class CallHold(BaseModel):
    reason: str | None = Field(description="why the call waits, or why it was not placed")
    rule: str | None = Field(
        description="the rule: a key of the calling-rules table (us-tcpa, us-fl, ...), "
        "callingHours (the campaign's), startAt or notAfter"
    )


class CallOut(BaseModel):
    id: str
    callSid: str | None
    status: str
    campaignId: str
    batchId: str | None
    name: str
    phoneNumber: str
    fromNumber: str
    durationSeconds: int | None
    hangupRequested: bool
    optedOut: bool = Field(
        description="the callee pressed the campaign's opt-out digit, and is on the account's "
        "do-not-contact list"
    )
    createdAt: datetime
    dialedAt: datetime | None = Field(description="when the call was handed to Twilio")
    answeredAt: datetime | None
    endedAt: datetime | None
    timezone: str | None = Field(description="the recipient's time zone, when given")
    startAt: datetime | None
    notAfter: datetime | None
    notBefore: datetime | None = Field(
        description="while scheduled: the first moment its hours and startAt allow"
    )
    hold: CallHold | None = Field(
        description="why it waits (scheduled) or why it was never placed (expired)"
    )
    error: CallError | None
    timeline: list[TimelineStep]
    webhook: str | None = Field(
        default=None, description="where its events go too: its own webhook, or its batch's"
    )


class CallSummary(BaseModel):
    id: str
    callSid: str | None
    status: str
    campaignId: str
    batchId: str | None
    name: str
    phoneNumber: str
    durationSeconds: int | None
    createdAt: datetime
    dialedAt: datetime | None


class CallPage(BaseModel):
    items: list[CallSummary]
    total: int
    limit: int
    offset: int


class HangUpResult(BaseModel):
    callId: str
    callSid: str | None
    status: str
    hangupRequested: bool
