"""Fixtures shared by the adapter tests: for the contract suite, one stand-in per platform for the
whole session (``standins``); for a platform's own module, its stand-in (``standin``, reset before every
test that uses it) and its adapter (``adapter``). Accounts, media and publishing helpers are plain
functions in helpers.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from adapters import adapter_class
from adapters.base import AccountRef, Adapter, Credentials
from adapters.standins import standin_class
from adapters.standins.base import StandIn
from tests.adapters.helpers import account_on, unique


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


# -- for a platform's own module: it names its platform once (``PLATFORM = "x"``) ----------------------
@pytest.fixture(scope="module")
def standin(request: pytest.FixtureRequest) -> Iterator[StandIn]:
    """The module's own running stand-in of its ``PLATFORM``: one per module, so a test that
    reconfigures it (a smaller limit, an aged token) cannot leak into another module."""
    server = standin_class(request.module.PLATFORM)().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _fresh_standin(request: pytest.FixtureRequest) -> None:
    """Every test that uses the module's stand-in starts with no posts, requests or faults (accounts
    and their tokens stay)."""
    if "standin" in request.fixturenames:
        request.getfixturevalue("standin").reset()


@pytest.fixture
def adapter(request: pytest.FixtureRequest) -> Adapter:
    return adapter_class(request.module.PLATFORM)(timeout=5)


@pytest.fixture
def creds(request: pytest.FixtureRequest, standin: StandIn) -> dict[str, str]:
    """What the stand-in issued for the module's ``HANDLE`` (with ``FOLLOWERS`` followers)."""
    return standin.add_account(request.module.HANDLE, followers=request.module.FOLLOWERS)


@pytest.fixture
def account(request: pytest.FixtureRequest, standin: StandIn) -> AccountRef:
    """The module's ``HANDLE`` (with its ``creds``) as crosspost stores it, pointed at the stand-in;
    where the module names no handle, a new account with a name of its own."""
    module = request.module
    if not hasattr(module, "HANDLE"):
        return account_on(standin, module.PLATFORM, unique())
    creds: dict[str, str] = request.getfixturevalue("creds")
    return AccountRef(id=1, platform=module.PLATFORM, handle=module.HANDLE, base_url=standin.url,
                      credentials=Credentials(creds))
