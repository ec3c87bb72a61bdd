"""Testing your own connectors, flows and tools with Patchwire (``docs/testing.md``).

- :class:`MockTransport`: the HTTP core answers from a function of the request instead of
  the network (``HttpCore(transport=MockTransport(handler))``, then
  ``Patchwire(settings, http=...)``); ``MockTransport.json(...)`` builds an answer.
- :class:`RecordingTransport` records what a real upstream answered, secrets redacted, to
  a JSON file (:class:`Recording`); :class:`Replay` answers from it through a
  ``MockTransport``, and a request it has no answer for is an
  :class:`~patchwire.errors.UnrecordedRequest` naming it.
- :func:`sandbox`: the four sandbox APIs on a loopback port, ``async with sandbox() as
  url:`` (:class:`Sandbox` for chaos, counters and webhooks).
- :class:`FakeClock`: seconds that move only on ``advance()``, for every ``clock=``.
- :func:`instant_retries`: within it, retries back off with zero waits (the decisions are
  unchanged), in the tasks started inside too; nothing global is switched.

With pytest the fixtures ``instant_retries``, ``fake_clock`` and ``patchwire_sandbox``
come from the plugin ``patchwire.testing.pytest_plugin``, registered when Patchwire is
installed.
"""

from patchwire.errors import RecordingError, UnrecordedRequest
from patchwire.http import MockTransport, PreparedRequest, RawResponse, instant_retries
from patchwire.sandbox import SANDBOX_CREDENTIALS, ChaosSettings, Sandbox

from ._clock import FakeClock
from ._recording import Exchange, Recording, RecordingTransport, Replay
from ._sandbox import sandbox

__all__ = [
    "SANDBOX_CREDENTIALS",
    "ChaosSettings",
    "Exchange",
    "FakeClock",
    "MockTransport",
    "PreparedRequest",
    "RawResponse",
    "Recording",
    "RecordingError",
    "RecordingTransport",
    "Replay",
    "Sandbox",
    "UnrecordedRequest",
    "instant_retries",
    "sandbox",
]
