"""Every router, collected in one place."""

from fastapi import APIRouter

from api.routes import (
    batches,
    billing,
    caller_ids,
    calls,
    campaigns,
    compliance,
    dnc,
    events,
    health,
    sms,
    webhook_endpoints,
    webhooks,
)

api_router = APIRouter(prefix="/api")
for module in (
    calls,
    batches,
    sms,
    campaigns,
    caller_ids,
    dnc,
    compliance,
    billing,
    events,
    webhook_endpoints,
    webhooks,
    health,
):
    api_router.include_router(module.router)
