"""How often a refusal is written down: a client that retries into a refusal as fast as it
can must not grow the audit log (and the daemon log) as fast. The first refusal per key and
interval is recorded; the ones after it are counted, and the next one recorded says how many
were left out."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

MAX_KEYS = 10_000  # distinct callers remembered; beyond, the memory is reset


class Throttle:
    def __init__(self, interval: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._seen: dict[Hashable, tuple[float, int]] = {}  # key -> (last recorded, left out since)

    def admit(self, key: Hashable) -> int | None:
        """None to leave this one out; else how many were left out since the last one."""
        now = self._clock()
        last, left_out = self._seen.get(key, (-self.interval, 0))
        if now - last < self.interval:
            self._seen[key] = (last, left_out + 1)
            return None
        if len(self._seen) >= MAX_KEYS:
            self._seen.clear()
        self._seen[key] = (now, 0)
        return left_out
