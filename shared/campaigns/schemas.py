from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from shared.calling_hours.hours import DAYS, InvalidHours, parse
from shared.models._columns import INT_MAX
from shared.schemas import CampaignName, Count, Line, Script, TimeZoneName

# Empty: the default caller ID.
CallerId = Annotated[Line, Field(max_length=64)]
# The key a callee presses to be put on the account's do-not-contact list.
OptOutDigit = Literal["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "#"]
_OPT_OUT_DIGIT = (
    "the key that puts the callee on the account's do-not-contact list (0-9, * or #): the "
    "call says so first, listens for it throughout, and hangs up once it is pressed; "
    "default: none"
)


class CallingHours(BaseModel):
    """Local hours in the recipient's time zone, from start (inclusive) to end (exclusive)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"start": "09:00", "end": "20:00", "days": ["mon", "tue", "wed"]}]
        }
    )

    start: str = Field(max_length=5, description="HH:MM")
    end: str = Field(max_length=5, description="HH:MM, 24:00 for midnight")
    days: list[str] = Field(default=list(DAYS), max_length=7)

    @model_validator(mode="after")
    def _valid(self) -> "CallingHours":
        try:
            parse(self.start, self.end, self.days)
        except InvalidHours as exc:
            raise PydanticCustomError(
                "calling_hours", "{field}: {message}", {"field": exc.field, "message": str(exc)}
            ) from None
        self.days = [day.lower() for day in self.days]
        return self


_HOURS_HELP = "local hours of the recipient; default: CALLING_HOURS (08:00-21:00 every day)"
_ZONE_HELP = "the zone of numbers tied to no place (toll-free); default: the contiguous US zones"


class CampaignCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"name": "welcome", "script": "Hello {name}, this is Toingg calling."},
                {
                    "name": "reminder",
                    "script": "Hello {name}, this is Toingg with a reminder.",
                    "optOutDigit": "9",
                },
            ]
        }
    )

    name: CampaignName
    script: Script
    callerId: CallerId | None = Field(
        default=None,
        description="one of the account's caller IDs (GET /api/caller-ids); default: the "
        "platform's number where it is shared, otherwise the account's first caller ID",
    )
    maxCallMinutes: Count = Field(default=5, ge=1, le=240)
    maxConcurrentCalls: Count | None = Field(
        default=None,
        ge=1,
        le=INT_MAX,
        description="live calls at once; default: the account's limit",
    )
    callingHours: CallingHours | None = Field(default=None, description=_HOURS_HELP)
    defaultTimezone: TimeZoneName | None = Field(default=None, description=_ZONE_HELP)
    optOutDigit: OptOutDigit | None = Field(default=None, description=_OPT_OUT_DIGIT)


class CampaignUpdate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"script": "Hi {name}, Toingg here.", "maxCallMinutes": 3}]}
    )

    name: CampaignName | None = None
    script: Script | None = None
    callerId: CallerId | None = None
    maxCallMinutes: Count | None = Field(default=None, ge=1, le=240)
    maxConcurrentCalls: Count | None = Field(default=None, ge=1, le=INT_MAX)
    callingHours: CallingHours | None = None
    defaultTimezone: TimeZoneName | None = None
    optOutDigit: OptOutDigit | Literal[""] | None = Field(
        default=None, description=f"{_OPT_OUT_DIGIT}; an empty string removes it"
    )


class CampaignOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    script: str
    callerId: str = Field(validation_alias="caller_id")
    maxCallMinutes: int = Field(validation_alias="max_call_minutes")
    maxConcurrentCalls: int | None = Field(validation_alias="max_concurrent_calls")
    callingHours: dict[str, Any] | None = Field(
        validation_alias="calling_hours", description="null: CALLING_HOURS"
    )
    defaultTimezone: str | None = Field(validation_alias="default_timezone")
    optOutDigit: str | None = Field(validation_alias="opt_out_digit")
    createdAt: datetime = Field(validation_alias="created_at")
    updatedAt: datetime = Field(validation_alias="updated_at")


class CampaignPage(BaseModel):
    items: list[CampaignOut]
    total: int
    limit: int
    offset: int
