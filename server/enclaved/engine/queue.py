"""The requests waiting for a sequence slot, first in first out, shared between the threads
that submit and cancel and the scheduler thread that takes them."""

from __future__ import annotations

import collections
import threading

from enclaved.engine.requests import Request
from enclaved.engine.slots import Sequence


class RequestQueue:
    """A FIFO of queued sequences under one condition, which also wakes the idle scheduler."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._waiting: collections.deque[Sequence] = collections.deque()
        self._closed = False

    def __len__(self) -> int:
        with self._cond:
            return len(self._waiting)

    def put(self, seq: Sequence) -> int:
        """Append ``seq``; returns how many are waiting now. Raises once the queue is closed."""
        with self._cond:
            if self._closed:
                raise RuntimeError("engine is closed")
            self._waiting.append(seq)
            self._cond.notify()
            return len(self._waiting)

    def cancel(self, req: Request) -> None:
        """Mark ``req`` cancelled (queued or not) and wake the scheduler to act on it."""
        with self._cond:
            req.cancelled = True
            self._cond.notify()

    def wait(self, busy: bool) -> bool:
        """Block the scheduler until there is work (``busy``: it has sequences in slots).
        False once the queue is closed and nothing is left to do."""
        with self._cond:
            while not (self._waiting or busy or self._closed):
                self._cond.wait()
            return bool(self._waiting or busy or not self._closed)

    def pop(self) -> Sequence | None:
        with self._cond:
            return self._waiting.popleft() if self._waiting else None

    def take_cancelled(self) -> list[Sequence]:
        """Remove and return the cancelled sequences, in queue order."""
        with self._cond:
            cancelled = [s for s in self._waiting if s.req.cancelled]
            for seq in cancelled:
                self._waiting.remove(seq)
            return cancelled

    def close(self) -> None:
        """Refuse new requests and cancel the waiting ones; the scheduler reports them."""
        with self._cond:
            self._closed = True
            for seq in self._waiting:
                seq.req.cancelled = True
            self._cond.notify()

    def drain(self) -> list[Sequence]:
        """Close the queue and take everything in it (when the scheduler cannot go on)."""
        with self._cond:
            self._closed = True
            drained = list(self._waiting)
            self._waiting.clear()
            return drained
