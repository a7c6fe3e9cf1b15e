"""The event log: what happened to each call, SMS, batch and account's credits, in order.

Events are appended by the status changes themselves (`append`, in their transaction: the
outbox) and read back by GET /api/events and the webhook deliveries."""

from shared.events.outbox import Appended, Draft, append, append_first, append_many

__all__ = ["Appended", "Draft", "append", "append_first", "append_many"]
