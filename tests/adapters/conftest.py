"""Fixtures shared by the adapter tests: one stand-in per platform for the whole session (started on
first use), reset before each test that uses it, and a fresh account on it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from adapters.standins import standin_class
from adapters.standins.base import StandIn


@pytest.fixture(scope="session")
def standins() -> Iterator[Callable[[str], StandIn]]:
    """``standins("x")``: the running X stand-in, started on first use and stopped at the end."""
    running: dict[str, StandIn] = {}

    def get(platform: str) -> StandIn:
        if platform not in running:
            running[platform] = standin_class(platform)().start()
        return running[platform]

    yield get
    for standin in running.values():
        standin.stop()
