"""What the workbench shows, as plain values: the view models its screens and widgets take.

The daemon's protobuf messages are turned into these in one place (``enclave.convert``), so no
screen or widget imports the generated stubs, and a test can build any state the screens show
without a daemon. Every class is frozen: a pane holds the agent as it was last told, and a new
one replaces it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Literal

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class Sampling:
    """An agent's sampling settings; None is the daemon's default."""

    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    min_p: float | None = None
    repeat_penalty: float | None = None
    seed: int | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class AgentView:
    name: str
    model: str
    system: str = ""
    sampling: Sampling = field(default_factory=Sampling)
    turns: int = 0  # completed turns in the transcript
    busy: bool = False
    context_tokens: int = 0  # what the conversation takes in the model's context
    damage: str = ""  # why the daemon's stored transcript is incomplete; "" when whole
    fallbacks: tuple[str, ...] = ()  # models that serve its turns, in order, when its own cannot


@dataclass(frozen=True)
class ChatMessage:
    """One message of a transcript."""

    role: Role
    content: str
    turn_id: str = ""
    finish_reason: str = ""
    dropped_messages: int = 0  # a reply's: oldest messages its prompt left out to fit the context


@dataclass(frozen=True)
class ModelView:
    """One model the daemon sees, with its live numbers from the Status stream."""

    name: str
    state: str  # available, loading, loaded, invalid, failed, pending (header not read yet)
    size_bytes: int = 0
    quantization: str = ""
    memory_bytes: int = 0
    context_size: int = 0  # tokens per sequence
    sequence_slots: int = 0
    active_sequences: int = 0
    queued_requests: int = 0
    decode_tokens_per_second: float = 0.0
    prompt_tokens_per_second: float = 0.0
    kept_states: int = 0  # KV states of agents whose slot another took, held in RAM
    kept_bytes: int = 0
    kept_budget_bytes: int = 0
    # seconds over recent turns, gRPC and HTTP alike: (p50, p95, p99); None before any turn
    first_token: tuple[float, float, float] | None = None
    turn: tuple[float, float, float] | None = None

    @property
    def usable(self) -> bool:
        """An agent may be given this model."""
        return self.state not in ("invalid", "failed")


@dataclass(frozen=True)
class StatusView:
    version: str
    agents: int
    active_turns: int
    memory_budget_bytes: int
    models: tuple[ModelView, ...]


@dataclass(frozen=True)
class LoadResult:
    load_seconds: float
    evicted: tuple[str, ...]  # models unloaded to make room


@dataclass(frozen=True)
class AuditActor:
    user: str = ""
    uid: int = -1  # -1: unknown
    pid: int = -1
    auth: str = ""  # how the identity was established


@dataclass(frozen=True)
class AuditRecord:
    seq: int
    time: str  # UTC, ISO 8601
    actor: AuditActor
    action: str
    agent: str = ""
    model: str = ""
    turn: str = ""
    outcome: str = ""
    payload_json: str = ""
    hash: str = ""


@dataclass(frozen=True)
class AuditQuery:
    """Which audit records; empty fields match everything, set ones combine with AND."""

    since: str = ""
    until: str = ""
    actor: str = ""
    agent: str = ""
    action: str = ""  # e.g. chat.request, or a prefix: chat.*
    outcome: str = ""

    @property
    def filtered(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    summary: str  # one line from the daemon
    records: int = 0
    last_seq: int = 0
    checkpoint_seq: int = 0
    bad_seq: int = 0  # the first record that failed; 0 when ok


@dataclass(frozen=True)
class RunView:
    """One event of a team run: ``event`` is started, verdict or finished."""

    run_id: str
    event: str
    team: str = ""
    kind: str = ""
    members: tuple[str, ...] = ()
    max_turns: int = 0
    max_tokens: int = 0
    step: int = 0
    guard: str = ""
    checked: str = ""  # the member whose reply the guard checked; "" for the message
    allowed: bool = True
    reason: str = ""  # the guard's reason, or why the run ended
    end: str = ""  # done, stop_text, max_turns, max_tokens, timeout, blocked, cancelled, error
    turns: int = 0
    tokens: int = 0


@dataclass(frozen=True)
class GuardView:
    """A team's guard: the agent that checks the message and/or each reply."""

    agent: str
    input: bool = True
    output: str = "hold"  # hold, after or none
    on_block: str = "stop"  # stop or skip
    timeout: float | None = None  # seconds; None is the daemon's default


@dataclass(frozen=True)
class TeamView:
    """A stored team; None limits are the daemon's defaults."""

    name: str
    kind: str
    members: tuple[str, ...]
    director: str = ""
    max_turns: int | None = None
    max_tokens: int | None = None
    timeout: float | None = None  # seconds per run
    stop_text: str = ""
    instructions: tuple[tuple[str, str], ...] = ()  # (member, what goes before its input)
    guard: GuardView | None = None
    busy: bool = False
