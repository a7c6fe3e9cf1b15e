from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

MAX_BATCH_SIZE = 100_000


class NumberEntry(BaseModel):
    # A number sent as a JSON number is still a number to call: read it as text.
    model_config = ConfigDict(coerce_numbers_to_str=True)

    clientName: str = Field(default="", max_length=200)
    clientNumber: str = Field(max_length=64)


class BatchRequest(BaseModel):
    campaign: str = Field(min_length=1, max_length=200)
    numberList: list[NumberEntry] = Field(min_length=1, max_length=MAX_BATCH_SIZE)


class RejectedRow(BaseModel):
    index: int
    clientNumber: str
    reason: str


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
    dialRatePerSecond: float
    estimatedFinishAt: datetime | None
    createdAt: datetime


class BatchCanceled(BaseModel):
    batchId: str
    status: str
    canceledCalls: int
    hangingUp: bool
