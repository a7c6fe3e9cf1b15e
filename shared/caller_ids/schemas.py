from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class CallerIdOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    number: str
    addedAt: datetime = Field(validation_alias="created_at")


class CallerIdList(BaseModel):
    items: list[CallerIdOut] = Field(description="the account's own numbers, oldest first")
    platformNumber: str | None = Field(
        description="TWILIO_FROM_NUMBER where every account may use it, otherwise null"
    )
    default: str | None = Field(
        description="the caller ID of a campaign or an SMS that names none (null: none, and "
        "one must be added before calling)"
    )
