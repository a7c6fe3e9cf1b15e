"""Twilio's requests into the API: the TwiML for a call, and status callbacks.

Each is verified with X-Twilio-Signature (over the URL as PUBLIC_BASE_URL makes it) before
anything in it is read; a missing or wrong signature gets 403 and changes nothing.
"""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import Connect, VoiceResponse

from api.deps import SessionDep
from api.routing import ApiRoute
from shared.calls import repository as calls_repository
from shared.calls import service as calls_service
from shared.calls import status as st
from shared.config import get_settings
from shared.schemas import Line
from shared.sms import service as sms_service
from shared.telephony import twiml

router = APIRouter(prefix="/twilio", tags=["twilio webhooks"], route_class=ApiRoute)


async def twilio_params(request: Request) -> dict[str, str]:
    settings = get_settings()
    url = settings.PUBLIC_BASE_URL.rstrip("/") + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    form = await request.form()
    params = {key: str(value) for key, value in form.items()}
    signature = request.headers.get("X-Twilio-Signature", "")
    if not RequestValidator(settings.TWILIO_AUTH_TOKEN).validate(url, params, signature):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "invalid X-Twilio-Signature")
    return params


TwilioParams = Annotated[dict[str, str], Depends(twilio_params)]


def _twiml(document: str) -> Response:
    return Response(content=document, media_type="application/xml")


@router.post("/voice/{call_id}", summary="TwiML for a call: the script it was accepted with")
def voice(call_id: Line, params: TwilioParams, session: SessionDep) -> Response:
    call = calls_repository.get(session, call_id)
    response = VoiceResponse()
    # A hang-up asked for (or a call already over) as the callee answers: end it, say nothing.
    if call is None or call.hangup_requested or call.status in st.FINAL:
        response.hangup()
        return _twiml(str(response))
    media_stream_url = get_settings().MEDIA_STREAM_URL
    if media_stream_url:
        connect = Connect()
        stream = connect.stream(url=media_stream_url)
        stream.parameter(name="callId", value=call.id)
        response.append(connect)
        return _twiml(str(response))
    # Within Twilio's limits: checked when the call was accepted, on this same document.
    return _twiml(twiml.say(calls_service.script_of(session, call)))


@router.post("/call-status", status_code=status.HTTP_204_NO_CONTENT, summary="Call status")
def call_status(callId: Line, params: TwilioParams, session: SessionDep) -> Response:
    try:
        calls_service.apply_status_callback(session, callId, params)
    except calls_service.CallNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"call {callId!r} not found") from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/sms-status", status_code=status.HTTP_204_NO_CONTENT, summary="SMS status")
def sms_status(smsId: Line, params: TwilioParams, session: SessionDep) -> Response:
    try:
        sms_service.apply_status_callback(session, smsId, params)
    except sms_service.SmsNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"sms {smsId!r} not found") from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)
