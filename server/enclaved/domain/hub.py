"""Turn events and their fan-out to every stream that wants them (Chat, Broadcast, Watch).

Everything here runs on the event loop thread, so taking a snapshot of the turns in progress
and subscribing happen atomically: a watcher that attaches mid-turn misses nothing.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

from enclaved.engine import TurnResult
from enclaved.errors import EnclaveError, ResourceExhausted

SUBSCRIBER_QUEUE_LIMIT = 10_000  # events; a subscriber this far behind is dropped
SUBSCRIBER_TEXT_LIMIT = 4 * 1024 * 1024  # characters of text held for one subscriber, likewise


class Phase(enum.Enum):
    QUEUED = "queued"
    PREFILL = "prefill"
    GENERATING = "generating"


@dataclass(frozen=True)
class Started:
    """A turn was accepted; it is queued until its phase changes."""

    model: str
    user_message: str
    held: bool = False  # a team's guard sees the reply first: no Delta until it allows it


@dataclass(frozen=True)
class PhaseChanged:
    phase: Phase
    prompt_tokens: int = 0  # from GENERATING on: what the prompt takes of the context


@dataclass(frozen=True)
class Delta:
    text: str
    tokens: int


@dataclass(frozen=True)
class Truncated:
    dropped_messages: int
    prompt_tokens: int


@dataclass(frozen=True)
class Served:
    """Which model serves the turn: sent for a remote model or a fallback, before its text."""

    model: str
    engine: str = ""
    replica: str = ""
    reason: str = ""  # why the agent's own model did not serve


@dataclass(frozen=True)
class TurnFailed:
    code: str  # a grpc status code name
    message: str


class Notice:
    """Not a turn's event (its turn_id is ""), e.g. ``agents.AgentChanged``: the hub fans it
    out to the subscribers of its agent without looking inside, so it need not know its type."""


@dataclass(frozen=True)
class RunStarted(Notice):
    """A team run began; its events carry its id (``TurnEvent.run``) until ``RunEnded``."""

    team: str
    kind: str
    members: tuple[str, ...]
    max_turns: int
    max_tokens: int
    timeout: float
    message: str


@dataclass(frozen=True)
class GuardChecked(Notice):
    guard: str
    checked: str  # the member whose reply it checked; "" for the run's input
    allowed: bool
    reason: str
    held: bool


@dataclass(frozen=True)
class RunEnded(Notice):
    reason: str  # done | stop_text | max_turns | max_tokens | timeout | blocked | cancelled | error
    message: str
    turns: int
    prompt_tokens: int
    completion_tokens: int
    cached_prompt_tokens: int
    elapsed_ms: float
    answer_agent: str
    answer: str


Body = Started | PhaseChanged | Delta | Truncated | Served | TurnResult | TurnFailed | Notice  # a TurnResult ends a turn


@dataclass(frozen=True)
class TurnEvent:
    agent: str
    turn_id: str
    body: Body
    run: str = ""  # the team run it belongs to, if any
    step: int = 0  # the run's turn count at this event

    @property
    def terminal(self) -> bool:
        return isinstance(self.body, (TurnResult, TurnFailed))


@dataclass
class LiveTurn:
    """What a late watcher needs to join a turn in progress."""

    agent: str
    turn_id: str
    started: Started
    phase: Phase = Phase.QUEUED
    prompt_tokens: int = 0
    text: str = ""
    tokens: int = 0
    served: Served | None = None
    truncated: Truncated | None = None
    run: str = ""
    step: int = 0

    def replay(self) -> list[TurnEvent]:
        bodies: list[Body] = [self.started]
        if self.served is not None:
            bodies.append(self.served)
        if self.truncated is not None:
            bodies.append(self.truncated)
        if self.phase is not Phase.QUEUED:
            bodies.append(PhaseChanged(self.phase, self.prompt_tokens))
        if self.text or self.tokens:
            bodies.append(Delta(self.text, self.tokens))
        return [TurnEvent(self.agent, self.turn_id, body, self.run, self.step) for body in bodies]


class Subscription:
    def __init__(
        self, hub: EventHub, agents: frozenset[str] | None, turn_ids: frozenset[str] | None, runs: frozenset[str] | None = None
    ) -> None:
        self._hub = hub
        self.agents = agents
        self.turn_ids = turn_ids
        self.runs = runs
        self.queue: asyncio.Queue[TurnEvent | None] = asyncio.Queue()
        self._held = 0  # characters of text queued: the limit counts memory, not only events
        self._error: EnclaveError | None = None

    def wants(self, event: TurnEvent) -> bool:
        if self.runs is not None:
            return event.run in self.runs
        if self.turn_ids is not None and event.turn_id not in self.turn_ids:
            return False
        return self.agents is None or event.agent in self.agents

    def offer(self, event: TurnEvent) -> None:
        if self._error is not None:
            return
        size = _text_size(event)
        if self.queue.qsize() >= SUBSCRIBER_QUEUE_LIMIT or self._held + size > SUBSCRIBER_TEXT_LIMIT:
            self.end(ResourceExhausted("this stream fell too far behind the tokens; reconnect to catch up"))
            return
        self._held += size
        self.queue.put_nowait(event)

    def end(self, error: EnclaveError) -> None:
        """Stop the stream: its reader gets ``error`` after the events already queued."""
        if self._error is None:
            self._error = error
            self.queue.put_nowait(None)

    async def events(self) -> AsyncIterator[TurnEvent]:
        while True:
            event = await self.queue.get()
            if event is None:
                assert self._error is not None
                raise self._error
            self._held -= _text_size(event)
            yield event

    def close(self) -> None:
        self._hub._subs.discard(self)


class EventHub:
    def __init__(self) -> None:
        self._subs: set[Subscription] = set()
        self._live: dict[str, LiveTurn] = {}
        self._runs: dict[str, TurnEvent] = {}  # the RunStarted of each run in progress

    def subscribe(
        self,
        *,
        agents: Iterable[str] | None = None,
        turn_ids: Iterable[str] | None = None,
        runs: Iterable[str] | None = None,
        replay_live: bool = False,
    ) -> Subscription:
        sub = Subscription(
            self,
            frozenset(agents) if agents is not None else None,
            frozenset(turn_ids) if turn_ids is not None else None,
            frozenset(runs) if runs is not None else None,
        )
        if replay_live:
            for started in self._runs.values():
                if sub.wants(started):
                    sub.offer(started)
            for live in self._live.values():
                for event in live.replay():
                    if sub.wants(event):
                        sub.offer(event)
        self._subs.add(sub)
        return sub

    def publish(self, event: TurnEvent) -> None:
        body = event.body
        if isinstance(body, RunStarted):
            self._runs[event.run] = event
        elif isinstance(body, RunEnded):
            self._runs.pop(event.run, None)
        if isinstance(body, Started):
            self._live[event.turn_id] = LiveTurn(event.agent, event.turn_id, body, run=event.run, step=event.step)
        live = self._live.get(event.turn_id)
        if live is not None:
            if isinstance(body, PhaseChanged):
                live.phase, live.prompt_tokens = body.phase, body.prompt_tokens or live.prompt_tokens
            elif isinstance(body, Served):
                live.served = body
            elif isinstance(body, Truncated):
                live.truncated = body
            elif isinstance(body, Delta):
                live.text += body.text
                live.tokens += body.tokens
            elif event.terminal:
                del self._live[event.turn_id]
        for sub in list(self._subs):
            if sub.wants(event):
                sub.offer(event)

    def close(self, error: EnclaveError) -> None:
        """End every stream (on shutdown)."""
        for sub in list(self._subs):
            sub.end(error)


def _text_size(event: TurnEvent) -> int:
    body = event.body
    if isinstance(body, Delta):
        return len(body.text)
    if isinstance(body, Started):
        return len(body.user_message)
    return 0
