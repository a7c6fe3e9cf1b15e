"""A batch's statuses, as stored. A batch is queued until its first call is claimed; it waits
for credits while every call of it not yet ended does; it is completed once every call of it
has ended; canceled and completed absorb everything after them."""

QUEUED = "queued"
RUNNING = "running"
PAUSED = "paused"
INSUFFICIENT_CREDITS = "insufficient-credits"
COMPLETED = "completed"
CANCELED = "canceled"

# Its calls must not start.
STOPPED = (PAUSED, CANCELED)
# It can still be paused, resumed or canceled.
ACTIVE = (QUEUED, RUNNING, PAUSED, INSUFFICIENT_CREDITS)
FINAL = frozenset({COMPLETED, CANCELED})
