"""The engine: one scheduler thread per loaded model, batching every sequence into one
``llama_decode`` per step. Its public names are these; layers above import nothing else.

- ``requests``: the request, its sampling settings, the events and the turn's result;
- ``queue``: the requests waiting for a slot;
- ``slots``: KV sequence slots and the sequences (requests in flight) with their state;
- ``scheduler``: the engine and its loop; ``stats``: its live figures;
- ``textstream``: token bytes to text, with stop strings.
"""

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
from enclaved.engine.scheduler import Engine, EngineConfig
from enclaved.engine.stats import EngineStats
from enclaved.llama import LoadError

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
