"""Patchwire's pytest fixtures, registered as the ``patchwire`` plugin (``pytest11`` entry
point) wherever Patchwire is installed:

- ``instant_retries``: the test's retries back off with zero waits (and 429s do not pause
  connections); the retry decisions are unchanged. Scoped to the test: nothing leaks.
- ``fake_clock``: a :class:`~patchwire.testing.FakeClock` for the ``clock=`` parameters.
- ``patchwire_sandbox``: the sandbox APIs on a loopback port for the test; the running
  :class:`~patchwire.testing.Sandbox` (``.url``). Needs pytest-asyncio.

The module imports Patchwire only when a fixture is used, so loading the plugin costs a
test session that uses none of them nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from patchwire.testing import FakeClock, Sandbox

__all__ = ["fake_clock", "instant_retries_fixture", "patchwire_sandbox"]


@pytest.fixture(name="instant_retries")
def instant_retries_fixture() -> Iterator[None]:
    """Retries without waiting, for this test and the tasks it starts."""
    from patchwire.testing import instant_retries

    with instant_retries():
        yield


@pytest.fixture
def fake_clock() -> FakeClock:
    """A clock that moves only on ``fake_clock.advance(seconds)``."""
    from patchwire.testing import FakeClock

    return FakeClock()


try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - the sandbox fixture needs an event loop plugin
    pass
else:

    @pytest_asyncio.fixture
    async def patchwire_sandbox() -> AsyncIterator[Sandbox]:
        """The sandbox APIs (shop, helpdesk, calendar, payments) on 127.0.0.1."""
        from patchwire.testing import Sandbox

        async with Sandbox() as running:
            yield running
