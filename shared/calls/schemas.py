from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from shared.schemas import CalleeName, CampaignName, PhoneNumber, Script


class MakeCallRequest(BaseModel):
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


class MakeCallDetailsRequest(BaseModel):
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
    createdAt: datetime
    dialedAt: datetime | None = Field(description="when the call was handed to Twilio")
    answeredAt: datetime | None
    endedAt: datetime | None
    error: CallError | None
    timeline: list[TimelineStep]


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
