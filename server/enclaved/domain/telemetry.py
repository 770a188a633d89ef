"""Every finished turn's figures, in one place: agent turns (gRPC) and stateless requests
(HTTP) both report here when they end, and whoever wants the numbers listens (the Prometheus
metrics of the HTTP transport) or asks for recent percentiles (``enclave status``).

Only the model's name goes with the figures: never an agent, a user or any text.
"""

from __future__ import annotations

import collections
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

from enclaved.engine import TurnResult

log = logging.getLogger("enclaved.telemetry")

RECENT_TURNS = 1000  # per model, for the percentiles


@dataclass(frozen=True)
class Finished:
    model: str
    result: TurnResult
    seconds: float  # from submit to the end, as the caller saw it


@dataclass(frozen=True)
class Percentiles:
    p50: float
    p95: float
    p99: float


Listener = Callable[[Finished], None]


class Telemetry:
    def __init__(self, recent: int = RECENT_TURNS) -> None:
        self._listeners: list[Listener] = []
        self._recent = recent
        self._first_token: dict[str, collections.deque[float]] = {}
        self._turn: dict[str, collections.deque[float]] = {}

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def finished(self, model: str, result: TurnResult, seconds: float) -> None:
        done = Finished(model, result, max(seconds, 0.0))
        if result.completion_tokens:
            self._first_token.setdefault(model, collections.deque(maxlen=self._recent)).append(result.time_to_first_token_ms / 1000)
            self._turn.setdefault(model, collections.deque(maxlen=self._recent)).append(done.seconds)
        for listener in self._listeners:
            try:
                listener(done)
            except Exception:  # a metrics bug must not fail a turn that succeeded
                log.exception("a telemetry listener failed")

    def first_token(self, model: str) -> Percentiles | None:
        """Seconds to the first token over the model's recent turns; None before any."""
        return percentiles(self._first_token.get(model, ()))

    def turn(self, model: str) -> Percentiles | None:
        """Seconds for a whole turn over the model's recent turns; None before any."""
        return percentiles(self._turn.get(model, ()))


def percentiles(values: collections.abc.Iterable[float]) -> Percentiles | None:
    ordered = sorted(values)
    if not ordered:
        return None

    def at(q: float) -> float:  # nearest rank
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]

    return Percentiles(at(0.50), at(0.95), at(0.99))


def result_figures(result: TurnResult) -> dict[str, object]:
    """A turn's counts and timings as its audit record holds them (gRPC and HTTP alike)."""
    return {
        "usage": {
            "prompt_tokens": result.prompt_tokens,
            "completion_tokens": result.completion_tokens,
            "cached_prompt_tokens": result.cached_prompt_tokens,
        },
        "timings_ms": {
            "queue": result.queue_ms,
            "first_token": result.time_to_first_token_ms,
            "prompt": result.prompt_ms,
            "generation": result.generation_ms,
        },
    }
