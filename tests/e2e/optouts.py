"""What the opt-out tests do as the callee's phone, the customer and Twilio."""

import httpx
from twilio.request_validator import RequestValidator

from shared.config import get_settings
from tests.stack import Api, Carrier, wait_until

OUR_NUMBER = get_settings().TWILIO_FROM_NUMBER  # the sandbox's, shared in development
INBOUND = "/api/twilio/sms-inbound"


def text_in(carrier: Carrier, phone: str, body: str) -> dict:  # type: ignore[type-arg]
    """The phone texts our number, through the sandbox, as Twilio delivers it."""
    response = carrier.http.post(
        "/sandbox/sms/inbound", json={"from": phone, "to": OUR_NUMBER, "body": body}
    )
    response.raise_for_status()
    return response.json()


def send_sms(api: Api, phone: str) -> httpx.Response:
    return api.post("/api/send_sms", json={"name": "Ada", "phoneNumber": phone, "message": "Hi"})


def place(api: Api, phone: str) -> httpx.Response:
    return api.post(
        "/api/make_toingg/", json={"campaign": "offers", "name": "Ada", "phoneNumber": phone}
    )


def on_list(api: Api, phone: str) -> dict:  # type: ignore[type-arg]
    response = api.get(f"/api/dnc/{phone}")
    assert response.status_code == 200, response.text
    return response.json()


def sms_status(api: Api, sms_id: str) -> str:
    return api.get(f"/api/sms/{sms_id}").json()["status"]


def call_of(api: Api, call_id: str) -> dict:  # type: ignore[type-arg]
    return api.get(f"/api/calls/{call_id}").json()


def delivered_sms(api: Api, phone: str) -> None:
    response = send_sms(api, phone)
    assert response.status_code == 200, response.text
    sms_id = response.json()["smsId"]
    wait_until(lambda: sms_status(api, sms_id) == "delivered", 30, message="sms delivered")


def completed_call(api: Api, phone: str) -> dict:  # type: ignore[type-arg]
    response = place(api, phone)
    assert response.status_code == 200, response.text
    call_id = response.json()["callId"]
    wait_until(lambda: call_of(api, call_id)["status"] == "completed", 30, message="call completed")
    return call_of(api, call_id)


def dnc_events(api: Api, phone: str) -> list[dict]:  # type: ignore[type-arg]
    items = api.get("/api/events", type="dnc.*").json()["items"]
    return [e for e in items if e["data"]["number"] == phone]


def signed_post(path: str, params: dict[str, str], signature: str | None = None) -> httpx.Response:
    settings = get_settings()
    url = settings.PUBLIC_BASE_URL + path
    if signature is None:
        signature = RequestValidator(settings.TWILIO_AUTH_TOKEN).compute_signature(url, params)
    return httpx.post(url, data=params, headers={"X-Twilio-Signature": signature})
