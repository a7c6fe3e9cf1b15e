"""Hang-ups have a queue of their own, and the worker that `toingg worker` (docker-compose's
worker) and `toingg run` start consumes it, as every queue a task is routed to."""

from pathlib import Path

import pytest
import yaml

from shared.cli import main, stack
from shared.queue import QUEUES, get_celery

COMPOSE = yaml.safe_load((Path(__file__).parents[1] / "docker-compose.yml").read_text())


def queue_of(task_name: str) -> str:
    return get_celery().amqp.router.route({}, task_name)["queue"].name  # type: ignore[no-any-return]


def consumed_by_toingg_worker(monkeypatch: pytest.MonkeyPatch, *args: str) -> set[str]:
    started: list[list[str]] = []
    monkeypatch.setattr(stack, "_exec", started.append)
    main(["worker", *args])
    [argv] = started
    [queues] = [a.removeprefix("--queues=") for a in argv if a.startswith("--queues=")]
    return set(queues.split(","))


class TestQueues:
    def test_hang_ups_wait_behind_no_dial_and_no_dispatcher_tick(self) -> None:
        assert queue_of("calls.hang_up") == queue_of("calls.sweep_hang_ups") == "hangups"
        for other in ("calls.dial", "calls.dispatch", "calls.sweep", "calls.settle", "sms.send"):
            assert queue_of(other) != "hangups"

    def test_the_worker_consumes_every_queue_a_task_is_routed_to(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        conf = get_celery().conf
        routed = {route["queue"] for route in conf.task_routes.values()}
        assert routed | {conf.task_default_queue} <= set(QUEUES)
        assert consumed_by_toingg_worker(monkeypatch) == set(QUEUES)
        # docker-compose runs `toingg worker` with its default queues.
        assert "--queues" not in " ".join(COMPOSE["services"]["worker"]["command"])
