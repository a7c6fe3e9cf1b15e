from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class MakeCallRequest(BaseModel):
    model_config = ConfigDict(coerce_numbers_to_str=True)

    campaign: str = Field(min_length=1, max_length=200)
    name: str = Field(default="", max_length=200)
    phoneNumber: str = Field(min_length=1, max_length=64)


class MakeCallDetailsRequest(BaseModel):
    model_config = ConfigDict(coerce_numbers_to_str=True)

    campaignName: str = Field(min_length=1, max_length=200)
    campaignScript: str = Field(min_length=1, max_length=10_000)
    name: str = Field(default="", max_length=200)
    phoneNumber: str = Field(min_length=1, max_length=64)


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
