from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from shared.models._columns import INT_MAX
from shared.schemas import CampaignName, Count, Line, Script

# Empty: the default caller ID.
CallerId = Annotated[Line, Field(max_length=64)]


class CampaignCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"name": "welcome", "script": "Hello {name}, this is Toingg calling."}]
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


class CampaignUpdate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"script": "Hi {name}, Toingg here.", "maxCallMinutes": 3}]}
    )

    name: CampaignName | None = None
    script: Script | None = None
    callerId: CallerId | None = None
    maxCallMinutes: Count | None = Field(default=None, ge=1, le=240)
    maxConcurrentCalls: Count | None = Field(default=None, ge=1, le=INT_MAX)


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
