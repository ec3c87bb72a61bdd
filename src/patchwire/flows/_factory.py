"""``create_engine``: the engine the settings ask for (``engine``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from patchwire.errors import ConfigError
from patchwire.flows._engine import FlowEngine
from patchwire.flows._protocol import ConfiguredFlowHost, Engine
from patchwire.flows.spec import FlowSpec

__all__ = ["create_engine"]


def create_engine(host: ConfiguredFlowHost, flows: Mapping[str, FlowSpec] | Any,
                  **options: Any) -> Engine:
    """The engine ``host.settings.engine`` asks for: the embedded one, or one running
    flows on Temporal (needs ``pip install 'patchwire[temporal]'``). ``options`` go to
    its constructor (``schedules``, ``max_concurrency``, ``clock``...)."""
    kind = host.settings.engine
    if kind == "temporal":
        try:
            from patchwire.flows._temporal import TemporalEngine
        except ImportError as exc:
            raise ConfigError("engine 'temporal' needs the Temporal SDK: "
                              "pip install 'patchwire[temporal]'") from exc
        return TemporalEngine(host, flows, **options)
    if kind != "embedded":
        raise ConfigError(f"engine must be 'embedded' or 'temporal', got {kind!r}")
    return FlowEngine(host, flows, **options)
