"""The task events the workers publish (task-received, task-started, task-succeeded, ...), which
Flower shows, without losing any that threads send at the same time.

A worker on the threads pool buffers its task events and flushes them from its event loop while
the pool's threads go on appending. Celery 5.6's flush publishes the buffer and then empties it,
so an event a thread appended during the socket write is dropped: Flower shows that task as
received or started for ever. Celery 5.7.0 flushes as below, but is held back (pyproject.toml);
once it is allowed, this module can go.
"""

from celery.app.events import Events as CeleryEvents
from celery.events.dispatcher import EventDispatcher as CeleryEventDispatcher


class EventDispatcher(CeleryEventDispatcher):
    def flush(self, errors: bool = True, groups: bool = True) -> None:
        if errors:
            # Taken before it is sent again, so that what fails again is kept for the next flush.
            with self.mutex:
                resend = list(self._outbound_buffer)
                self._outbound_buffer.clear()
                for event, routing_key, *_ in resend:
                    self._publish(event, self.producer, routing_key)
        if groups:
            with self.mutex:
                for group, events in self._group_buffer.items():
                    if not events:
                        continue
                    # A copy is sent (a failed send keeps the object it was given for the next
                    # flush), and only what was sent is removed: threads append meanwhile.
                    batch = list(events)
                    self._publish(batch, self.producer, f"{group}.multi")
                    del events[: len(batch)]


class Events(CeleryEvents):
    dispatcher_cls = f"{__name__}:EventDispatcher"
