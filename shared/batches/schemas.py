from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from shared.schemas import CalleeName, CampaignName, Line, OffsetTime, TimeZoneName, check_not_after
from shared.webhooks.schemas import Url

MAX_BATCH_SIZE = 100_000


class NumberEntry(BaseModel):
    # A number sent as a JSON number is still a number to call: read it as text.
    model_config = ConfigDict(coerce_numbers_to_str=True)

    clientName: CalleeName = ""
    clientNumber: Annotated[Line, Field(max_length=64)]
    timezone: TimeZoneName | None = Field(
        default=None, description="the recipient's IANA time zone; default: from the number"
    )


class BatchRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "campaign": "welcome",
                    "numberList": [
                        {"clientName": "Client A", "clientNumber": "+14155552671"},
                        {"clientName": "Client B", "clientNumber": "+1 202 555 0123"},
                    ],
                }
            ]
        }
    )

    campaign: CampaignName
    numberList: list[NumberEntry] = Field(min_length=1, max_length=MAX_BATCH_SIZE)
    startAt: OffsetTime | None = Field(
        default=None, description="no call of the batch before this (ISO 8601 with an offset)"
    )
    notAfter: OffsetTime | None = Field(
        default=None, description="a call not placed by then ends expired"
    )
    webhook: Url | None = Field(
        default=None,
        description="http:// or https://: the batch's events, and each of its calls', go there "
        "too, signed with the account's secret for such URLs (`toingg accounts webhook-secret`)",
    )

    @field_validator("notAfter")
    @classmethod
    def _after_start(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        return check_not_after(value, info.data.get("startAt"))


class RejectedRow(BaseModel):
    index: int
    clientNumber: str
    reason: str
    # Which of the row's fields the reason is about (not part of the answer's row).
    field: str = Field(default="clientNumber", exclude=True)


class BatchAccepted(BaseModel):
    batchId: str
    status: str
    accepted: int
    duplicates: int
    rejected: list[RejectedRow]


class BatchOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    campaign: str
    status: str
    total: int
    duplicates: int
    rejected: int
    counts: dict[str, int]
    waitingForHours: int = Field(description="calls scheduled: waiting for their hours or startAt")
    nextHoursOpenAt: datetime | None = Field(description="when the first of those may be placed")
    dialRatePerSecond: float
    estimatedFinishAt: datetime | None
    createdAt: datetime
    webhook: str | None = Field(
        default=None, description="where its events, and its calls', go too"
    )


class BatchCanceled(BaseModel):
    batchId: str
    status: str
    canceledCalls: int
    hangingUp: bool
