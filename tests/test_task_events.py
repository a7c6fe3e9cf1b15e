"""Every task event a worker sends reaches the event stream Flower reads, also one a pool thread
sends while the worker's event loop is flushing the buffer (the threads pool does both at once)."""

import os
import threading
import uuid
from typing import Any

from shared.queue import get_celery
from tests.stack import TaskEvents, wait_until


class TestTaskEvents:
    def test_an_end_sent_while_a_flush_is_on_its_way_reaches_the_stream(self) -> None:
        app = get_celery()
        received, ended = str(uuid.uuid4()), str(uuid.uuid4())
        with (
            TaskEvents(os.environ["REDIS_URL"]) as events,
            app.connection_for_write() as connection,
        ):
            # Buffered as a worker on the threads pool buffers its task events.
            dispatcher = app.events.Dispatcher(connection, buffer_group=["task"])
            publish = dispatcher.producer.publish

            def publish_while_a_task_ends(*args: Any, **kwargs: Any) -> None:
                publish(*args, **kwargs)
                if not ended_sent.is_set():
                    # Written to the broker, not yet cleared from the buffer: a pool thread's
                    # task ends now.
                    ended_sent.set()
                    thread = threading.Thread(
                        target=dispatcher.send,
                        args=("task-succeeded",),
                        kwargs={"uuid": ended, "result": "'done'", "runtime": 0.01},
                    )
                    thread.start()
                    thread.join()

            ended_sent = threading.Event()
            dispatcher.producer.publish = publish_while_a_task_ends
            dispatcher.send("task-received", uuid=received, name="sms.send")
            dispatcher.flush()  # the event loop's flush, during which the task ends
            dispatcher.flush()  # the event loop's next one
            wait_until(
                lambda: events.ended(ended) is not None,
                10,
                message="the task's end is on the event stream",
            )
            dispatcher.close()
        assert [e["uuid"] for e in events.of_type("task-received")] == [received]
