"""Every table, one module each; importing this package registers them all on Base.metadata."""

from shared.models._columns import new_id, utcnow
from shared.models.account import Account
from shared.models.api_key import ApiKey
from shared.models.batch import Batch
from shared.models.call import Call
from shared.models.call_event import CallEvent
from shared.models.caller_id import CallerId
from shared.models.campaign import Campaign
from shared.models.checkout_session import CheckoutSession
from shared.models.credit_entry import CreditEntry
from shared.models.dispatch_turn import DispatchTurn
from shared.models.dispute import Dispute
from shared.models.dnc_entry import DncChange, DncEntry
from shared.models.event import Event
from shared.models.external_event import ExternalEvent
from shared.models.idempotency_key import IdempotencyKey
from shared.models.script import Script
from shared.models.sms_message import SmsMessage
from shared.models.sms_turn import SmsTurn
from shared.models.webhook_delivery import WebhookAttempt, WebhookDelivery
from shared.models.webhook_endpoint import WebhookEndpoint

__all__ = [
    "Account",
    "ApiKey",
    "Batch",
    "Call",
    "CallEvent",
    "CallerId",
    "Campaign",
    "CheckoutSession",
    "CreditEntry",
    "DispatchTurn",
    "Dispute",
    "DncChange",
    "DncEntry",
    "Event",
    "ExternalEvent",
    "IdempotencyKey",
    "Script",
    "SmsMessage",
    "SmsTurn",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "new_id",
    "utcnow",
]
