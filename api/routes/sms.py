"""SMS: send one, read it back."""

from fastapi import APIRouter, HTTPException, status

from api.deps import CurrentAccount, SessionDep
from api.errors import invalid_field, payment_required, require_unblocked
from api.idempotency import Idempotent, IdempotentRoute
from api.refusals import refused
from shared.billing.ledger import InsufficientCredits
from shared.caller_ids import service as caller_ids
from shared.dnc import service as dnc
from shared.events import types
from shared.schemas import Line
from shared.sms import service as sms_service
from shared.sms import views as sms_views
from shared.sms.schemas import SendSmsRequest, SmsAccepted, SmsOut
from shared.telephony.numbers import InvalidNumber

router = APIRouter(tags=["sms"], route_class=IdempotentRoute)


@router.post(
    "/send_sms", response_model=SmsAccepted, summary="Send an SMS", dependencies=[Idempotent]
)
@router.post(
    "/send_sms/",
    response_model=SmsAccepted,
    include_in_schema=False,
    dependencies=[Idempotent],
)
def send_sms(body: SendSmsRequest, session: SessionDep, account: CurrentAccount) -> SmsAccepted:
    require_unblocked(session, account)
    try:
        sms = sms_service.accept(
            session, account, body.name, body.phoneNumber, body.message, body.fromNumber
        )
    except (caller_ids.InvalidCallerId, caller_ids.CallerIdNotAllowed) as exc:
        raise invalid_field(["fromNumber"], str(exc)) from None
    except dnc.OnTheList as exc:
        refused(session, account.id, types.SMS_REFUSED, exc)
        raise invalid_field(["phoneNumber"], str(exc)) from None
    except InvalidNumber as exc:
        raise invalid_field(["phoneNumber"], str(exc)) from None
    except InsufficientCredits as exc:
        raise payment_required(exc.balance, exc.price) from None
    return SmsAccepted(smsId=sms.id, status=sms.status, phoneNumber=sms.to_number)


@router.get("/sms/{sms_ref}", response_model=SmsOut, summary="An SMS, by id or message SID")
def get_sms(sms_ref: Line, session: SessionDep, account: CurrentAccount) -> SmsOut:
    try:
        sms = sms_service.get_for_account(session, account.id, sms_ref)
    except sms_service.SmsNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"sms {sms_ref!r} not found") from None
    return sms_views.out(sms)
