"""The drills' stack, one per drill module, and their figures: printed as each drill runs
(visible with -s) and again in the terminal summary, so CI's output always shows them."""

from collections.abc import Iterator
from typing import Any

import pytest

from shared.config import get_settings
from tests.drills.stack import DrillStack

_FIGURES: list[tuple[str, dict[str, Any]]] = []


def report(drill: str, figures: dict[str, Any]) -> None:
    _FIGURES.append((drill, figures))
    print(f"\n{_render(drill, figures)}")


def _render(drill: str, figures: dict[str, Any]) -> str:
    return "\n".join(
        [f"drill: {drill}", *(f"  {name}: {value}" for name, value in figures.items())]
    )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _FIGURES:
        terminalreporter.section("drill figures")
        for drill, figures in _FIGURES:
            terminalreporter.write_line(_render(drill, figures))


@pytest.fixture(scope="module")
def drill(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DrillStack]:
    stack = DrillStack(
        tmp_path_factory.mktemp("drill"),
        get_settings().database_url,
        env=getattr(request.module, "STACK_ENV", {}),
    )
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
