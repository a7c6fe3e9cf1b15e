from sqlalchemy import select, union
from sqlalchemy.orm import Session

from shared.models import Call, SmsMessage


def accounts_reaching(session: Session, phone: str, our_number: str) -> list[str]:
    """The accounts that called or texted `phone` from `our_number` (ix_calls_to_from and
    ix_sms_messages_to_from), each once."""
    calls = select(Call.account_id).where(Call.to_number == phone, Call.from_number == our_number)
    texts = select(SmsMessage.account_id).where(
        SmsMessage.to_number == phone, SmsMessage.from_number == our_number
    )
    return sorted(session.scalars(union(calls, texts)))
