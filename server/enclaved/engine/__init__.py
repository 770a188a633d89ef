"""The engine: one scheduler thread per loaded model, batching every sequence into one
``llama_decode`` per step (``scheduler``), and the text stream of each sequence."""

from enclaved.engine.scheduler import (
    Admitted,
    Done,
    Engine,
    EngineConfig,
    EngineEvent,
    EngineStats,
    Failed,
    Finish,
    Generating,
    Request,
    Text,
)

__all__ = ["Admitted", "Done", "Engine", "EngineConfig", "EngineEvent", "EngineStats", "Failed", "Finish", "Generating", "Request", "Text"]
