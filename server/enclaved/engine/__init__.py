"""The engine: one scheduler thread per loaded model, batching every sequence into one
``llama_decode`` per step. Its public names are these; layers above import nothing else.

- ``requests``: the request, its sampling settings, the events and the turn's result;
- ``queue``: the requests waiting for a slot;
- ``slots``: KV sequence slots and the sequences (requests in flight) with their state;
- ``scheduler``: the engine and its loop; ``stats``: its live figures;
- ``textstream``: token bytes to text, with stop strings.

``Engine`` and ``EngineConfig`` (the scheduler: numpy and llama.cpp) are imported on first
use, so the daemon answers before it has loaded either.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from enclaved.engine.requests import (
    Admitted,
    EngineEvent,
    Failed,
    Finish,
    Generating,
    Request,
    SamplingSettings,
    Sink,
    Text,
    TurnResult,
)
from enclaved.engine.stats import EngineStats
from enclaved.llama import LoadError

if TYPE_CHECKING:
    from enclaved.engine.scheduler import Engine, EngineConfig

__all__ = [
    "Admitted",
    "Engine",
    "EngineConfig",
    "EngineEvent",
    "EngineStats",
    "Failed",
    "Finish",
    "Generating",
    "LoadError",
    "Request",
    "SamplingSettings",
    "Sink",
    "Text",
    "TurnResult",
]


def __getattr__(name: str) -> Any:
    if name in ("Engine", "EngineConfig"):
        from enclaved.engine import scheduler

        return getattr(scheduler, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
