from enclave_contract.v1 import agents_pb2 as _agents_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TurnPhase(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TURN_PHASE_UNSPECIFIED: _ClassVar[TurnPhase]
    TURN_PHASE_QUEUED: _ClassVar[TurnPhase]
    TURN_PHASE_PREFILL: _ClassVar[TurnPhase]
    TURN_PHASE_GENERATING: _ClassVar[TurnPhase]

class FinishReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FINISH_REASON_UNSPECIFIED: _ClassVar[FinishReason]
    FINISH_REASON_END_OF_TURN: _ClassVar[FinishReason]
    FINISH_REASON_MAX_TOKENS: _ClassVar[FinishReason]
    FINISH_REASON_STOP_STRING: _ClassVar[FinishReason]
    FINISH_REASON_CANCELLED: _ClassVar[FinishReason]
    FINISH_REASON_CONTEXT_FULL: _ClassVar[FinishReason]

class RunEnd(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUN_END_UNSPECIFIED: _ClassVar[RunEnd]
    RUN_END_DONE: _ClassVar[RunEnd]
    RUN_END_STOP_TEXT: _ClassVar[RunEnd]
    RUN_END_MAX_TURNS: _ClassVar[RunEnd]
    RUN_END_MAX_TOKENS: _ClassVar[RunEnd]
    RUN_END_TIMEOUT: _ClassVar[RunEnd]
    RUN_END_BLOCKED: _ClassVar[RunEnd]
    RUN_END_CANCELLED: _ClassVar[RunEnd]
    RUN_END_ERROR: _ClassVar[RunEnd]
TURN_PHASE_UNSPECIFIED: TurnPhase
TURN_PHASE_QUEUED: TurnPhase
TURN_PHASE_PREFILL: TurnPhase
TURN_PHASE_GENERATING: TurnPhase
FINISH_REASON_UNSPECIFIED: FinishReason
FINISH_REASON_END_OF_TURN: FinishReason
FINISH_REASON_MAX_TOKENS: FinishReason
FINISH_REASON_STOP_STRING: FinishReason
FINISH_REASON_CANCELLED: FinishReason
FINISH_REASON_CONTEXT_FULL: FinishReason
RUN_END_UNSPECIFIED: RunEnd
RUN_END_DONE: RunEnd
RUN_END_STOP_TEXT: RunEnd
RUN_END_MAX_TURNS: RunEnd
RUN_END_MAX_TOKENS: RunEnd
RUN_END_TIMEOUT: RunEnd
RUN_END_BLOCKED: RunEnd
RUN_END_CANCELLED: RunEnd
RUN_END_ERROR: RunEnd

class ChatRequest(_message.Message):
    __slots__ = ("agent", "message", "detach")
    AGENT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DETACH_FIELD_NUMBER: _ClassVar[int]
    agent: str
    message: str
    detach: bool
    def __init__(self, agent: _Optional[str] = ..., message: _Optional[str] = ..., detach: _Optional[bool] = ...) -> None: ...

class BroadcastRequest(_message.Message):
    __slots__ = ("message", "agents", "detach")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    DETACH_FIELD_NUMBER: _ClassVar[int]
    message: str
    agents: _containers.RepeatedScalarFieldContainer[str]
    detach: bool
    def __init__(self, message: _Optional[str] = ..., agents: _Optional[_Iterable[str]] = ..., detach: _Optional[bool] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ("agents",)
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    agents: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, agents: _Optional[_Iterable[str]] = ...) -> None: ...

class CancelRequest(_message.Message):
    __slots__ = ("turn_id", "agent", "all")
    TURN_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    ALL_FIELD_NUMBER: _ClassVar[int]
    turn_id: str
    agent: str
    all: bool
    def __init__(self, turn_id: _Optional[str] = ..., agent: _Optional[str] = ..., all: _Optional[bool] = ...) -> None: ...

class CancelResponse(_message.Message):
    __slots__ = ("cancelled_turn_ids",)
    CANCELLED_TURN_IDS_FIELD_NUMBER: _ClassVar[int]
    cancelled_turn_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, cancelled_turn_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class TurnStarted(_message.Message):
    __slots__ = ("model", "user_message", "held")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    USER_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    model: str
    user_message: str
    held: bool
    def __init__(self, model: _Optional[str] = ..., user_message: _Optional[str] = ..., held: _Optional[bool] = ...) -> None: ...

class PhaseChanged(_message.Message):
    __slots__ = ("phase", "prompt_tokens")
    PHASE_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    phase: TurnPhase
    prompt_tokens: int
    def __init__(self, phase: _Optional[_Union[TurnPhase, str]] = ..., prompt_tokens: _Optional[int] = ...) -> None: ...

class TokenDelta(_message.Message):
    __slots__ = ("text", "tokens")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    text: str
    tokens: int
    def __init__(self, text: _Optional[str] = ..., tokens: _Optional[int] = ...) -> None: ...

class HistoryTruncated(_message.Message):
    __slots__ = ("dropped_messages", "prompt_tokens")
    DROPPED_MESSAGES_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    dropped_messages: int
    prompt_tokens: int
    def __init__(self, dropped_messages: _Optional[int] = ..., prompt_tokens: _Optional[int] = ...) -> None: ...

class Usage(_message.Message):
    __slots__ = ("prompt_tokens", "completion_tokens", "cached_prompt_tokens")
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHED_PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    prompt_tokens: int
    completion_tokens: int
    cached_prompt_tokens: int
    def __init__(self, prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., cached_prompt_tokens: _Optional[int] = ...) -> None: ...

class Timings(_message.Message):
    __slots__ = ("queue_ms", "time_to_first_token_ms", "prompt_ms", "generation_ms", "prompt_tokens_per_second", "generation_tokens_per_second")
    QUEUE_MS_FIELD_NUMBER: _ClassVar[int]
    TIME_TO_FIRST_TOKEN_MS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_MS_FIELD_NUMBER: _ClassVar[int]
    GENERATION_MS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    GENERATION_TOKENS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    queue_ms: float
    time_to_first_token_ms: float
    prompt_ms: float
    generation_ms: float
    prompt_tokens_per_second: float
    generation_tokens_per_second: float
    def __init__(self, queue_ms: _Optional[float] = ..., time_to_first_token_ms: _Optional[float] = ..., prompt_ms: _Optional[float] = ..., generation_ms: _Optional[float] = ..., prompt_tokens_per_second: _Optional[float] = ..., generation_tokens_per_second: _Optional[float] = ...) -> None: ...

class TurnFinished(_message.Message):
    __slots__ = ("finish_reason", "usage", "timings")
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    finish_reason: FinishReason
    usage: Usage
    timings: Timings
    def __init__(self, finish_reason: _Optional[_Union[FinishReason, str]] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ..., timings: _Optional[_Union[Timings, _Mapping]] = ...) -> None: ...

class TurnError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class AgentChanged(_message.Message):
    __slots__ = ("change", "agent")
    class Change(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        CHANGE_UNSPECIFIED: _ClassVar[AgentChanged.Change]
        CHANGE_CREATED: _ClassVar[AgentChanged.Change]
        CHANGE_UPDATED: _ClassVar[AgentChanged.Change]
        CHANGE_DELETED: _ClassVar[AgentChanged.Change]
        CHANGE_CLEARED: _ClassVar[AgentChanged.Change]
    CHANGE_UNSPECIFIED: AgentChanged.Change
    CHANGE_CREATED: AgentChanged.Change
    CHANGE_UPDATED: AgentChanged.Change
    CHANGE_DELETED: AgentChanged.Change
    CHANGE_CLEARED: AgentChanged.Change
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    change: AgentChanged.Change
    agent: _agents_pb2.Agent
    def __init__(self, change: _Optional[_Union[AgentChanged.Change, str]] = ..., agent: _Optional[_Union[_agents_pb2.Agent, _Mapping]] = ...) -> None: ...

class ModelServed(_message.Message):
    __slots__ = ("model", "engine", "replica", "reason")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    model: str
    engine: str
    replica: str
    reason: str
    def __init__(self, model: _Optional[str] = ..., engine: _Optional[str] = ..., replica: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ChatEvent(_message.Message):
    __slots__ = ("agent", "turn_id", "started", "phase", "delta", "truncated", "finished", "error", "agent_changed", "served", "run_started", "guard_verdict", "run_finished", "run_id", "step")
    AGENT_FIELD_NUMBER: _ClassVar[int]
    TURN_ID_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    AGENT_CHANGED_FIELD_NUMBER: _ClassVar[int]
    SERVED_FIELD_NUMBER: _ClassVar[int]
    RUN_STARTED_FIELD_NUMBER: _ClassVar[int]
    GUARD_VERDICT_FIELD_NUMBER: _ClassVar[int]
    RUN_FINISHED_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    agent: str
    turn_id: str
    started: TurnStarted
    phase: PhaseChanged
    delta: TokenDelta
    truncated: HistoryTruncated
    finished: TurnFinished
    error: TurnError
    agent_changed: AgentChanged
    served: ModelServed
    run_started: RunStarted
    guard_verdict: GuardVerdict
    run_finished: RunFinished
    run_id: str
    step: int
    def __init__(self, agent: _Optional[str] = ..., turn_id: _Optional[str] = ..., started: _Optional[_Union[TurnStarted, _Mapping]] = ..., phase: _Optional[_Union[PhaseChanged, _Mapping]] = ..., delta: _Optional[_Union[TokenDelta, _Mapping]] = ..., truncated: _Optional[_Union[HistoryTruncated, _Mapping]] = ..., finished: _Optional[_Union[TurnFinished, _Mapping]] = ..., error: _Optional[_Union[TurnError, _Mapping]] = ..., agent_changed: _Optional[_Union[AgentChanged, _Mapping]] = ..., served: _Optional[_Union[ModelServed, _Mapping]] = ..., run_started: _Optional[_Union[RunStarted, _Mapping]] = ..., guard_verdict: _Optional[_Union[GuardVerdict, _Mapping]] = ..., run_finished: _Optional[_Union[RunFinished, _Mapping]] = ..., run_id: _Optional[str] = ..., step: _Optional[int] = ...) -> None: ...

class RunStarted(_message.Message):
    __slots__ = ("team", "kind", "members", "max_turns", "max_tokens", "timeout_seconds", "message")
    TEAM_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    MAX_TURNS_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    team: str
    kind: str
    members: _containers.RepeatedScalarFieldContainer[str]
    max_turns: int
    max_tokens: int
    timeout_seconds: float
    message: str
    def __init__(self, team: _Optional[str] = ..., kind: _Optional[str] = ..., members: _Optional[_Iterable[str]] = ..., max_turns: _Optional[int] = ..., max_tokens: _Optional[int] = ..., timeout_seconds: _Optional[float] = ..., message: _Optional[str] = ...) -> None: ...

class GuardVerdict(_message.Message):
    __slots__ = ("guard", "checked", "allowed", "reason", "held")
    GUARD_FIELD_NUMBER: _ClassVar[int]
    CHECKED_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    guard: str
    checked: str
    allowed: bool
    reason: str
    held: bool
    def __init__(self, guard: _Optional[str] = ..., checked: _Optional[str] = ..., allowed: _Optional[bool] = ..., reason: _Optional[str] = ..., held: _Optional[bool] = ...) -> None: ...

class RunFinished(_message.Message):
    __slots__ = ("reason", "message", "turns", "usage", "elapsed_ms", "answer_agent", "answer")
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TURNS_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_MS_FIELD_NUMBER: _ClassVar[int]
    ANSWER_AGENT_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    reason: RunEnd
    message: str
    turns: int
    usage: Usage
    elapsed_ms: float
    answer_agent: str
    answer: str
    def __init__(self, reason: _Optional[_Union[RunEnd, str]] = ..., message: _Optional[str] = ..., turns: _Optional[int] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ..., elapsed_ms: _Optional[float] = ..., answer_agent: _Optional[str] = ..., answer: _Optional[str] = ...) -> None: ...
