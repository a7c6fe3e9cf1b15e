from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

Name = Field(min_length=1, max_length=200)
Script = Field(min_length=1, max_length=10_000)


class CampaignCreate(BaseModel):
    name: str = Name
    script: str = Script
    callerId: str | None = Field(default=None, description="E.164; default TWILIO_FROM_NUMBER")
    maxCallMinutes: int = Field(default=5, ge=1, le=240)
    maxConcurrentCalls: int | None = Field(
        default=None, ge=1, description="live calls at once; default: the account's limit"
    )


class CampaignUpdate(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    script: str | None = Field(default=None, min_length=1, max_length=10_000)
    callerId: str | None = None
    maxCallMinutes: int | None = Field(default=None, ge=1, le=240)
    maxConcurrentCalls: int | None = Field(default=None, ge=1)


class CampaignOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    script: str
    callerId: str = Field(validation_alias="caller_id")
    maxCallMinutes: int = Field(validation_alias="max_call_minutes")
    maxConcurrentCalls: int | None = Field(validation_alias="max_concurrent_calls")
    createdAt: datetime = Field(validation_alias="created_at")
    updatedAt: datetime = Field(validation_alias="updated_at")


class CampaignPage(BaseModel):
    items: list[CampaignOut]
    total: int
    limit: int
    offset: int
