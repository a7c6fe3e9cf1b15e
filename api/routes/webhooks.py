"""Twilio's requests into the API: the TwiML for a call, the key a callee pressed, status
callbacks, and the texts phones send to our numbers.

Each is verified with X-Twilio-Signature (over the URL as PUBLIC_BASE_URL makes it) before
anything in it is read; a missing or wrong signature gets 403 and changes nothing.
"""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from sqlalchemy.orm import Session
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import Connect, VoiceResponse

from api.deps import SessionDep
from api.errors import invalid_field
from api.routing import ApiRoute
from shared.calls import repository as calls_repository
from shared.calls import service as calls_service
from shared.calls import status as st
from shared.config import get_settings
from shared.models import Call
from shared.optouts import service as optouts
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
    return _twiml(_message_of(session, call))


def _message_of(session: Session, call: Call) -> str:
    # Within Twilio's limits: checked when the call was accepted, on this same document.
    script = calls_service.script_of(session, call)
    if call.opt_out_digit is None:
        return twiml.say(script)
    return twiml.say_offering_opt_out(
        script,
        call.opt_out_digit,
        calls_service.opt_out_url(call.id),
        get_settings().OPT_OUT_PROMPT,
    )


@router.post("/opt-out/{call_id}", summary="The key a callee pressed during a call's message")
def key_pressed(call_id: Line, params: TwilioParams, session: SessionDep) -> Response:
    call = calls_repository.get(session, call_id)
    if call is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"call {call_id!r} not found")
    if optouts.key_pressed(session, call, params.get("Digits", "")):
        return _twiml(twiml.say_and_hang_up(get_settings().OPT_OUT_CONFIRMATION))
    # Another key ended the message: it starts again, still listening for the opt-out key.
    return _twiml(_message_of(session, call))


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


@router.post("/sms-inbound", summary="A text a phone sent to one of our numbers")
def sms_inbound(params: TwilioParams, session: SessionDep) -> Response:
    """STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, REVOKE or OPTOUT (the whole message, any
    case) puts the sender on the do-not-contact list of every account that called or texted
    them from that number; START, UNSTOP or YES takes them off; HELP is answered with
    HELP_TEXT. Any other text is taken and left unanswered."""
    try:
        text = optouts.read_text(params)
    except optouts.InvalidText as exc:
        raise invalid_field([exc.field], str(exc)) from None
    reply = optouts.text_received(session, text)
    response = MessagingResponse()
    if reply is not None:
        response.message(reply)
    return _twiml(str(response))
