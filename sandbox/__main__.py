import uvicorn

from sandbox.server import create_app
from sandbox.twilio.config import CarrierSettings

settings = CarrierSettings()
uvicorn.run(create_app(settings), host=settings.HOST, port=settings.PORT, log_level="warning")
