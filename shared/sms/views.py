"""An SMS as GET /api/sms/{id} shows it: what the API answers, and what its events carry."""

from shared.models import SmsMessage
from shared.sms.schemas import SmsOut


def out(sms: SmsMessage) -> SmsOut:
    return SmsOut(
        id=sms.id,
        messageSid=sms.twilio_sid,
        status=sms.status,
        name=sms.name,
        phoneNumber=sms.to_number,
        fromNumber=sms.from_number,
        message=sms.body,
        segments=sms.segments,
        errorCode=sms.error_code,
        errorMessage=sms.error_message,
        createdAt=sms.created_at,
        updatedAt=sms.updated_at,
    )
