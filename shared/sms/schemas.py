from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from shared.schemas import CalleeName, PhoneNumber, Prose


class SendSmsRequest(BaseModel):
    model_config = ConfigDict(
        coerce_numbers_to_str=True,
        json_schema_extra={
            "examples": [
                {"name": "John Doe", "phoneNumber": "+14155552671", "message": "Hello from Toingg!"}
            ]
        },
    )

    name: CalleeName = ""
    phoneNumber: PhoneNumber
    message: Annotated[Prose, Field(min_length=1, max_length=1600)]
    fromNumber: PhoneNumber | None = Field(
        default=None,
        description="the sender: one of the account's caller IDs (GET /api/caller-ids); "
        "default: the caller ID a campaign gets when it names none",
    )


class SmsAccepted(BaseModel):
    smsId: str
    status: str
    phoneNumber: str


class SmsOut(BaseModel):
    id: str
    messageSid: str | None
    status: str
    name: str
    phoneNumber: str
    fromNumber: str
    message: str | None = Field(
        description="null once the message is older than RETENTION_DAYS (its status, segments "
        "and cost are kept)"
    )
    segments: int | None
    errorCode: str | None
    errorMessage: str | None
    createdAt: datetime
    updatedAt: datetime
