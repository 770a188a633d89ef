"""A circuit breaker for one (replica, model): closed → open after N consecutive failures →
half-open once the cooldown has passed, letting one probe request through → closed when it
succeeds, open again when it fails. Every change is logged in one line.

Small enough to own: a library would add a dependency for twenty lines and would not know
that only failures before the first token count (see ``client``)."""

from __future__ import annotations

import enum
import logging
import time

log = logging.getLogger("enclaved.engines")


class Circuit(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class Breaker:
    def __init__(self, label: str, failures: int, cooldown: float) -> None:
        self.label = label  # "engine gpu replica http://… model m", for the log
        self.threshold = failures
        self.cooldown = cooldown
        self.state = Circuit.CLOSED
        self.failures = 0  # consecutive
        self.opened_at = 0.0
        self.probing = False  # the half-open probe is in flight

    def _change(self, state: Circuit, why: str) -> None:
        if state is not self.state:
            log.warning("circuit of %s: %s → %s (%s)", self.label, self.state.value, state.value, why)
            self.state = state

    def current(self) -> Circuit:
        """The state now: an open circuit whose cooldown has passed reads half-open."""
        if self.state is Circuit.OPEN and time.monotonic() - self.opened_at >= self.cooldown:
            self._change(Circuit.HALF_OPEN, f"{self.cooldown:g} s cooldown over; one probe request may go")
        return self.state

    def allows(self) -> bool:
        state = self.current()
        return state is Circuit.CLOSED or (state is Circuit.HALF_OPEN and not self.probing)

    def begin(self) -> None:
        """A request goes through; in half-open it is the probe."""
        if self.current() is Circuit.HALF_OPEN:
            self.probing = True

    def succeeded(self) -> None:
        self.failures = 0
        self.probing = False
        self._change(Circuit.CLOSED, "a request succeeded")

    def failed(self) -> None:
        self.failures += 1
        was_probe, self.probing = self.probing, False
        if was_probe or (self.state is Circuit.CLOSED and self.failures >= self.threshold):
            self.opened_at = time.monotonic()
            why = "the probe request failed" if was_probe else f"{self.failures} failures in a row"
            self._change(Circuit.OPEN, f"{why}; retried after {self.cooldown:g} s")

    def released(self) -> None:
        """A request ended neither way (cancelled): a probe may go again."""
        self.probing = False
