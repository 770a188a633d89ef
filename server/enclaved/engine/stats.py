"""Recent decoding rates and batch occupancy, for ``Engine.stats()``."""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass

RATE_WINDOW_SECONDS = 5.0


@dataclass(frozen=True)
class EngineStats:
    active: int
    queued: int
    decode_tps: float
    prompt_tps: float
    tokens_generated: int
    occupancy: float
    state_cache_bytes: int = 0  # saved sequence states of conversations that lost their slot
    state_cache_budget: int = 0
    state_cache_entries: int = 0


class StepLog:
    """What the last steps decoded; the scheduler writes, any thread reads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # (step end, tokens, step seconds) of recent steps
        self._decode: collections.deque[tuple[float, int, float]] = collections.deque()
        self._prompt: collections.deque[tuple[float, int, float]] = collections.deque()
        self._occupancy: collections.deque[int] = collections.deque(maxlen=64)
        self.generated = 0

    def step(self, end: float, seconds: float, decoded: int, prefilled: int) -> None:
        """One ``llama_decode`` of ``decoded`` generated and ``prefilled`` prompt tokens."""
        with self._lock:
            if decoded:
                self._decode.append((end, decoded, seconds))
                self._occupancy.append(decoded)
            if prefilled:
                self._prompt.append((end, prefilled, seconds))

    def sampled(self) -> None:
        self.generated += 1  # only the scheduler thread writes it

    def stats(self, now: float, active: int, queued: int) -> EngineStats:
        with self._lock:
            occupancy = self._occupancy
            return EngineStats(
                active=active,
                queued=queued,
                decode_tps=_rate(self._decode, now),
                prompt_tps=_rate(self._prompt, now),
                tokens_generated=self.generated,
                occupancy=(sum(occupancy) / len(occupancy)) if occupancy else 0.0,
            )


def _rate(entries: collections.deque[tuple[float, int, float]], now: float) -> float:
    """Tokens per second of decoding time over the last few seconds (0 when idle)."""
    while entries and now - entries[0][0] > RATE_WINDOW_SECONDS:
        entries.popleft()
    busy = sum(seconds for _, _, seconds in entries)
    return sum(n for _, n, _ in entries) / busy if busy > 0 else 0.0
