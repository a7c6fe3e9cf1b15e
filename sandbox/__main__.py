import uvicorn

from sandbox.server import create_app
from sandbox.twilio.config import CarrierSettings
from sandbox.twilio.faults import DroppableConnections

settings = CarrierSettings()
uvicorn.run(
    DroppableConnections(create_app(settings)),
    host=settings.HOST,
    port=settings.PORT,
    log_level="warning",
)
