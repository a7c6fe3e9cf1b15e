from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from shared.schemas import Line
from shared.webhooks.addresses import URL_MAX_LENGTH

Url = Annotated[Line, Field(min_length=1, max_length=URL_MAX_LENGTH)]
Pattern = Annotated[Line, Field(min_length=1, max_length=100)]
Description = Annotated[Line, Field(max_length=500)]

_EVENTS = "event types (call.completed) or wildcards (call.*, or * for every event)"


class EndpointCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"url": "https://example.com/toingg", "events": ["call.*", "batch.completed"]}
            ]
        }
    )

    url: Url = Field(description="http:// or https://; redirects are not followed")
    events: list[Pattern] = Field(default=["*"], description=_EVENTS)
    description: Description = ""
    # JSON true or false only: "no", "0" or 0 would be read as the client may not have meant.
    enabled: StrictBool = True


class EndpointUpdate(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"enabled": True}]})

    url: Url | None = None
    events: list[Pattern] | None = Field(default=None, description=_EVENTS)
    description: Description | None = None
    enabled: StrictBool | None = Field(
        default=None, description="true enables again an endpoint we disabled"
    )


class EndpointOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    url: str
    events: list[str]
    description: str
    enabled: bool
    perCall: bool = Field(
        validation_alias="per_call",
        description="made for the webhook URL of calls and batches: it gets their events "
        "alone, signed with the account's secret for such URLs, and its url and events do not "
        "change",
    )
    disabledReason: str | None = Field(
        validation_alias="disabled_reason",
        description="why we disabled it (null: enabled, or disabled through the API)",
    )
    previousSecretExpiresAt: datetime | None = Field(
        validation_alias="previous_secret_expires_at",
        description="until when the secret before the last rotation signs too",
    )
    createdAt: datetime = Field(validation_alias="created_at")
    updatedAt: datetime = Field(validation_alias="updated_at")


class EndpointCreated(EndpointOut):
    secret: str = Field(description="the signing secret (whsec_...), shown this once")


class EndpointList(BaseModel):
    items: list[EndpointOut] = Field(description="the account's endpoints, oldest first")
    total: int
    limit: int
    offset: int


class SecretRotated(BaseModel):
    secret: str = Field(description="the new signing secret, shown this once")
    previousSecretExpiresAt: datetime = Field(
        description="the old secret signs beside the new one until then"
    )


class AccountSecretRotated(BaseModel):
    secret: str = Field(
        description="the new secret (whsec_...) that signs deliveries to the webhook URLs of "
        "calls and batches, shown this once"
    )
    previousSecretExpiresAt: datetime | None = Field(
        description="the old secret signs beside the new one until then (null: there was none)"
    )


class AttemptOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    attemptedAt: datetime = Field(validation_alias="attempted_at")
    statusCode: int | None = Field(
        validation_alias="status_code", description="the receiver's answer (null: none)"
    )
    latencyMs: int | None = Field(
        validation_alias="latency_ms",
        description="from the request to the answer (null with no outcome: the worker was "
        "lost mid-attempt, and the delivery is tried again)",
    )
    error: str | None = Field(description="why it did not count as delivered")


class DeliveryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    eventId: str = Field(validation_alias="event_id")
    eventType: str = Field(validation_alias="event_type")
    state: Literal["pending", "delivered", "failed"] = Field(
        description="failed: given up after the retry window, or the endpoint answered 410"
    )
    nextAttemptAt: datetime | None = Field(validation_alias="next_attempt_at")
    deliveredAt: datetime | None = Field(validation_alias="delivered_at")
    attempts: list[AttemptOut] = Field(
        validation_alias="attempt_rows", description="every attempt, oldest first"
    )
    createdAt: datetime = Field(validation_alias="created_at")


class DeliveryPage(BaseModel):
    items: list[DeliveryOut] = Field(description="newest first")
    total: int
    limit: int
    offset: int


class Queued(BaseModel):
    deliveries: int = Field(description="deliveries queued (each endpoint's once)")
