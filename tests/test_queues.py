"""Hang-ups have a queue of their own, and webhook delivery one for a worker of its own: the
workers docker-compose and `toingg run` start consume every queue a task is routed to between
them, and `toingg worker` alone consumes them all."""

from pathlib import Path

import pytest
import yaml

from shared.cli import main, stack
from shared.queue import QUEUES, WEBHOOK_QUEUE, get_celery

COMPOSE = yaml.safe_load((Path(__file__).parents[1] / "docker-compose.yml").read_text())


def queue_of(task_name: str) -> str:
    return get_celery().amqp.router.route({}, task_name)["queue"].name  # type: ignore[no-any-return]


def consumed(argv: list[str]) -> set[str]:
    [queues] = [a.removeprefix("--queues=") for a in argv if a.startswith("--queues=")]
    return set(queues.split(","))


def consumed_by(monkeypatch: pytest.MonkeyPatch, command: list[str]) -> set[str]:
    """The queues the worker a `toingg` command starts consumes."""
    started: list[list[str]] = []
    monkeypatch.setattr(stack, "_exec", started.append)
    main(command)
    [argv] = started
    return consumed(argv)


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
        assert consumed_by(monkeypatch, ["worker"]) == set(QUEUES)

    def test_webhooks_are_delivered_by_a_worker_of_their_own_in_compose_and_toingg_run(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        assert queue_of("webhooks.tick") == WEBHOOK_QUEUE
        services = COMPOSE["services"]
        for workers in (
            [
                consumed_by(monkeypatch, services[name]["command"][1:])
                for name in ("worker", "webhooks")
            ],
            [consumed(argv) for _, argv in stack.workers_argv(16)],
        ):
            dial, webhooks = workers
            assert dial | webhooks == set(QUEUES)
            assert webhooks == {WEBHOOK_QUEUE}
            assert WEBHOOK_QUEUE not in dial
