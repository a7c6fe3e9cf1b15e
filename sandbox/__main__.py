import sys

import uvicorn

from sandbox.server import create_app
from sandbox.twilio.config import CarrierSettings
from sandbox.twilio.faults import DroppableConnections
from shared.config import settings_or_exit

# It accepts any call and signs Stripe events with whatever STRIPE_WEBHOOK_SECRET its
# environment holds: beside production, anyone reaching it could credit themselves.
if settings_or_exit("toingg sandbox").ENVIRONMENT == "production":
    sys.exit("toingg sandbox: refusing to start with ENVIRONMENT=production: it is for development")

settings = CarrierSettings()
uvicorn.run(
    DroppableConnections(create_app(settings)),
    host=settings.HOST,
    port=settings.PORT,
    log_level="warning",
)
