"""Agents: a name, a model, a system prompt, sampling settings, and the conversation so far."""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from enclaved.audit.recorder import Recorder
from enclaved.audit.records import Entry
from enclaved.domain.hub import EventHub, Notice, TurnEvent
from enclaved.engine import SamplingSettings
from enclaved.errors import EnclaveError, FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted

log = logging.getLogger("enclaved.agents")
# So that one client cannot lock the others out: ListAgents answers in one gRPC message
# (4 MiB at most), which these two keep well within.
MAX_AGENTS = 256
MAX_SYSTEM_PROMPTS_BYTES = 2 * 1024 * 1024  # all agents' system prompts together
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_STOP_STRINGS = 16
MAX_FALLBACKS = 8


@dataclass(frozen=True)
class AgentParams:
    """Sampling settings; ``None`` means the default."""

    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    min_p: float | None = None
    repeat_penalty: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    max_tokens: int | None = None

    def sampling(self) -> SamplingSettings:
        d = SamplingSettings()
        return SamplingSettings(
            temperature=d.temperature if self.temperature is None else self.temperature,
            top_k=d.top_k if self.top_k is None else self.top_k,
            top_p=d.top_p if self.top_p is None else self.top_p,
            min_p=d.min_p if self.min_p is None else self.min_p,
            repeat_penalty=d.repeat_penalty if self.repeat_penalty is None else self.repeat_penalty,
            seed=random.getrandbits(32) if self.seed is None else self.seed,
        )

    @property
    def reply_limit(self) -> int:
        return 256 if self.max_tokens is None else self.max_tokens


@dataclass(frozen=True)
class Message:
    role: str  # "user" | "assistant"
    content: str
    turn_id: str
    finish_reason: str = ""
    dropped_messages: int = 0  # an assistant reply's: oldest messages its prompt left out to fit
    # an assistant reply's tokens as the model generated them (in memory only): the next
    # prompt reuses them, so it begins with exactly what the agent's KV sequence holds
    tokens: tuple[int, ...] = field(default=(), compare=False, repr=False)


@dataclass
class Agent:
    name: str
    model: str
    system: str = ""
    params: AgentParams = field(default_factory=AgentParams)
    history: list[Message] = field(default_factory=list)
    # Turns of one agent run one after another: the next one sees the previous reply.
    turn_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    in_flight: int = 0
    context_tokens: int = 0  # prompt + reply of the last turn: how full its context is
    deleting: bool = False  # its turns are being stopped: no new ones, nothing more kept
    stored: int = 0  # the transcript position its next stored message takes
    damage: str = ""  # why its stored transcript is incomplete (a row unreadable, a gap)
    fallbacks: tuple[str, ...] = ()  # models that serve its turns, in order, when its own cannot

    @property
    def turns(self) -> int:
        return sum(1 for m in self.history if m.role == "assistant")

    def said(self) -> list[Message]:
        """The history a prompt is built from: an exchange whose reply is empty (cancelled
        before its first token, failed, or cut off by a daemon that stopped) is left out with
        its message, which the model never answered."""
        out: list[Message] = []
        for m in self.history:
            if m.role == "assistant" and not m.content and not m.tokens:
                if out and out[-1].role == "user":
                    out.pop()
                continue
            out.append(m)
        return out


def answered(messages: list[Message]) -> list[Message]:
    """A stored transcript with an empty reply marked ``interrupted`` after each message that
    has none: the daemon stopped (SIGKILL, a power cut) after storing the message and before
    its reply."""
    out: list[Message] = []
    for m in messages:
        if m.role == "user" and out and out[-1].role == "user":
            out.append(Message("assistant", "", out[-1].turn_id, "interrupted"))
        out.append(m)
    if out and out[-1].role == "user":
        out.append(Message("assistant", "", out[-1].turn_id, "interrupted"))
    return out


class Change(enum.Enum):
    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"
    CLEARED = "cleared"


@dataclass(frozen=True)
class AgentChanged(Notice):
    """An agent was created, edited, deleted or cleared; published on the hub for watchers."""

    change: Change
    agent: Agent


def validate(name: str, system: str, params: AgentParams, max_text_bytes: int) -> None:
    if not _NAME.match(name):
        raise InvalidArgument("agent name must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    if len(system.encode("utf-8")) > max_text_bytes:
        raise InvalidArgument(f"system prompt is over the {max_text_bytes}-byte limit; shorten it")
    checks = [
        (params.temperature, lambda v: 0.0 <= v <= 5.0, "temperature must be between 0 and 5"),
        (params.top_k, lambda v: 0 <= v <= 100_000, "top_k must be between 0 (off) and 100000"),
        (params.top_p, lambda v: 0.0 < v <= 1.0, "top_p must be above 0 and at most 1"),
        (params.min_p, lambda v: 0.0 <= v <= 1.0, "min_p must be between 0 and 1"),
        (params.repeat_penalty, lambda v: 0.0 < v <= 5.0, "repeat_penalty must be above 0 and at most 5 (1 = off)"),
        (params.max_tokens, lambda v: 1 <= v <= 1_000_000, "max_tokens must be between 1 and 1000000"),
        (params.seed, lambda v: 0 <= v < 2**32, "seed must be between 0 and 4294967295"),
    ]
    whole = {"top_k", "max_tokens", "seed"}
    for (value, ok, message), name in zip(checks, ("temperature", "top_k", "top_p", "min_p", "repeat_penalty", "max_tokens", "seed")):
        if value is None:
            continue
        number = isinstance(value, int) if name in whole else isinstance(value, int | float)
        if not number or isinstance(value, bool):
            raise InvalidArgument(f"{name} must be a {'whole ' if name in whole else ''}number, not {value!r}")
        if not ok(value):
            raise InvalidArgument(message)
    if not isinstance(params.stop, tuple) or not all(isinstance(s, str) for s in params.stop):
        raise InvalidArgument('stop must be a list of strings, like ["\\n\\n", "END"]')
    if len(params.stop) > MAX_STOP_STRINGS or any(not s or len(s) > 256 for s in params.stop):
        raise InvalidArgument(f"stop takes at most {MAX_STOP_STRINGS} non-empty strings of up to 256 characters")


def check_fallbacks(model: str, fallbacks: tuple[str, ...], known: Callable[[str], None]) -> None:
    """InvalidArgument, naming the field, unless each fallback is a model ``known`` accepts
    (a local model or a configured ``model@engine``; it raises otherwise), none is the agent's
    own model and none is named twice."""
    if len(fallbacks) > MAX_FALLBACKS:
        raise InvalidArgument(f"fallbacks: at most {MAX_FALLBACKS} models, not {len(fallbacks)}")
    for i, name in enumerate(fallbacks):
        if not name:
            raise InvalidArgument("fallbacks: an entry is empty; name a local model or model@engine")
        if name == model:
            raise InvalidArgument(f"fallbacks: {name!r} is the agent's own model; name other models")
        if name in fallbacks[:i]:
            raise InvalidArgument(f"fallbacks: {name!r} is named twice")
        try:
            known(name)
        except EnclaveError as exc:
            raise InvalidArgument(f"fallbacks: {exc.message}") from None


class AgentBook:
    """All agents, by name.

    A change made for a client is recorded in the audit log and kept in the store before it
    takes effect, then published on the hub so watching clients follow. Agents from the config
    file are ``define``d at every start with the file's settings; agents created or edited at
    run time keep theirs in the store; every transcript comes back from the store.
    """

    def __init__(self, max_text_bytes: int, hub: EventHub, recorder: Recorder) -> None:
        self.max_text_bytes = max_text_bytes
        self._hub = hub
        self._recorder = recorder
        self._agents: dict[str, Agent] = {}

    def all(self) -> list[Agent]:
        return list(self._agents.values())

    def get(self, name: str) -> Agent:
        agent = self._agents.get(name)
        if agent is None:
            raise NotFound(f"no agent named {name!r}; see `enclave agents`, or create it")
        return agent

    def define(self, name: str, model: str, system: str, params: AgentParams, fallbacks: tuple[str, ...] = ()) -> Agent:
        """An agent at start-up (from the config file or the store): nothing to record."""
        validate(name, system, params, self.max_text_bytes)
        agent = self._agents[name] = Agent(name=name, model=model, system=system, params=params, fallbacks=fallbacks)
        return agent

    def _check_room(self, name: str, system: str, created: bool) -> None:
        if created and len(self._agents) >= MAX_AGENTS:
            raise ResourceExhausted(f"there are {MAX_AGENTS} agents, the most enclaved keeps; delete one first (enclave agent delete NAME)")
        others = sum(len(a.system.encode()) for n, a in self._agents.items() if n != name)
        if others + len(system.encode()) > MAX_SYSTEM_PROMPTS_BYTES:
            raise ResourceExhausted(
                f"the agents' system prompts together would be over {MAX_SYSTEM_PROMPTS_BYTES // (1024 * 1024)} MiB, "
                "the most enclaved keeps; shorten this one or delete agents"
            )

    async def restore(self, configured: set[str]) -> None:
        """Agents created at run time, and every agent's transcript, from the store."""
        store = self._recorder.conversations
        for name, settings in (await store.load_agents()).items():
            if settings is None:  # its settings row was altered: the agent cannot be rebuilt
                log.warning("agent %s: its stored settings cannot be decrypted; it is left out (put it again to restore it)", name)
                lost = {"damage": "its stored settings cannot be decrypted; it was left out"}
                await self._recorder.record(Entry("agent.damaged", agent=name, outcome="error", payload=lost))
            elif name not in configured:
                params = AgentParams(**{**settings["params"], "stop": tuple(settings["params"].get("stop", ()))})
                self.define(name, settings["model"], settings["system"], params, tuple(settings.get("fallbacks", ())))
        for name, transcript in (await store.load_transcripts()).items():
            agent = self._agents.get(name)
            if agent is None:
                continue
            history = [Message(m.role, m.content, m.turn_id, m.finish_reason, m.dropped_messages) for m in transcript.messages]
            # a damaged transcript's gaps are not replies that never came: it is shown as read
            agent.history = history if transcript.damage else answered(history)
            agent.stored, agent.damage = transcript.next_position, transcript.damage
            # how full its context was after its last reply, so clients see it before it speaks
            agent.context_tokens = next((m.context_tokens for m in reversed(transcript.messages) if m.context_tokens), 0)
            if agent.damage:
                log.warning(
                    "agent %s: its stored transcript is damaged (%s); it goes on without it, clear it to start afresh", name, agent.damage
                )
                payload = {"damage": agent.damage, "messages_kept": len(agent.history)}
                await self._recorder.record(Entry("agent.damaged", agent=name, model=agent.model, outcome="error", payload=payload))

    async def put(self, name: str, model: str, system: str, params: AgentParams, fallbacks: tuple[str, ...] = ()) -> tuple[Agent, bool]:
        """Create the agent or replace its settings (its transcript stays). ``fallbacks`` are
        checked by the caller (``check_fallbacks``), which knows the models."""
        validate(name, system, params, self.max_text_bytes)
        created = name not in self._agents
        self._check_room(name, system, created)
        await self._recorder.record(
            Entry(
                "agent.create" if created else "agent.update",
                agent=name,
                model=model,
                payload={"params": _params_dict(params), "fallbacks": list(fallbacks)},
                text={"system": system},
            )
        )
        settings = {"model": model, "system": system, "params": _params_dict(params), "fallbacks": list(fallbacks)}
        await self._recorder.conversations.save_agent(name, settings)
        agent = self._agents.get(name)
        if agent is None:
            agent = self._agents[name] = Agent(name=name, model=model, system=system, params=params, fallbacks=fallbacks)
        else:
            agent.model, agent.system, agent.params, agent.fallbacks = model, system, params, fallbacks
        self._changed(Change.CREATED if created else Change.UPDATED, agent)
        return agent, created

    async def delete(self, name: str) -> Agent:
        agent = self.get(name)
        await self._recorder.record(Entry("agent.delete", agent=name, model=agent.model, payload={"turns": agent.turns}))
        await self._recorder.conversations.delete_agent(name)
        del self._agents[name]
        self._changed(Change.DELETED, agent)
        return agent

    async def clear(self, name: str) -> None:
        """Empty the agent's transcript (its settings stay)."""
        agent = self.get(name)
        if agent.in_flight:
            raise FailedPrecondition(f"agent {agent.name!r} has a turn in flight; cancel it or wait, then clear")
        await self._recorder.record(Entry("agent.update", agent=name, model=agent.model, payload={"cleared_turns": agent.turns}))
        await self._recorder.conversations.clear(name)
        agent.history.clear()
        agent.context_tokens = 0
        agent.stored, agent.damage = 0, ""
        self._changed(Change.CLEARED, agent)

    def _changed(self, change: Change, agent: Agent) -> None:
        self._hub.publish(TurnEvent(agent.name, "", AgentChanged(change, agent)))


def _params_dict(params: AgentParams) -> dict[str, object]:
    return {**asdict(params), "stop": list(params.stop)}
