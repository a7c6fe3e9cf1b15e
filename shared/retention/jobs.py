"""Task names for retention."""

PURGE = "retention.purge"
