"""Task names for idempotency keys."""

PURGE = "idempotency.purge"
