from enclave_contract.v1 import models_pb2 as _models_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StatusRequest(_message.Message):
    __slots__ = ("interval_seconds", "once")
    INTERVAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ONCE_FIELD_NUMBER: _ClassVar[int]
    interval_seconds: float
    once: bool
    def __init__(self, interval_seconds: _Optional[float] = ..., once: _Optional[bool] = ...) -> None: ...

class ModelStatus(_message.Message):
    __slots__ = ("name", "state", "memory_bytes", "size_bytes", "quantization", "context_size", "sequence_slots", "active_sequences", "queued_requests", "decode_tokens_per_second", "prompt_tokens_per_second", "tokens_generated", "batch_occupancy", "state_cache_bytes", "state_cache_budget_bytes", "state_cache_entries", "engine", "replicas", "problem", "first_token", "turn")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    QUANTIZATION_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_SIZE_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_SLOTS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_SEQUENCES_FIELD_NUMBER: _ClassVar[int]
    QUEUED_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    DECODE_TOKENS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    TOKENS_GENERATED_FIELD_NUMBER: _ClassVar[int]
    BATCH_OCCUPANCY_FIELD_NUMBER: _ClassVar[int]
    STATE_CACHE_BYTES_FIELD_NUMBER: _ClassVar[int]
    STATE_CACHE_BUDGET_BYTES_FIELD_NUMBER: _ClassVar[int]
    STATE_CACHE_ENTRIES_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    PROBLEM_FIELD_NUMBER: _ClassVar[int]
    FIRST_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TURN_FIELD_NUMBER: _ClassVar[int]
    name: str
    state: _models_pb2.ModelState
    memory_bytes: int
    size_bytes: int
    quantization: str
    context_size: int
    sequence_slots: int
    active_sequences: int
    queued_requests: int
    decode_tokens_per_second: float
    prompt_tokens_per_second: float
    tokens_generated: int
    batch_occupancy: float
    state_cache_bytes: int
    state_cache_budget_bytes: int
    state_cache_entries: int
    engine: str
    replicas: _containers.RepeatedCompositeFieldContainer[_models_pb2.EngineReplica]
    problem: str
    first_token: Latency
    turn: Latency
    def __init__(self, name: _Optional[str] = ..., state: _Optional[_Union[_models_pb2.ModelState, str]] = ..., memory_bytes: _Optional[int] = ..., size_bytes: _Optional[int] = ..., quantization: _Optional[str] = ..., context_size: _Optional[int] = ..., sequence_slots: _Optional[int] = ..., active_sequences: _Optional[int] = ..., queued_requests: _Optional[int] = ..., decode_tokens_per_second: _Optional[float] = ..., prompt_tokens_per_second: _Optional[float] = ..., tokens_generated: _Optional[int] = ..., batch_occupancy: _Optional[float] = ..., state_cache_bytes: _Optional[int] = ..., state_cache_budget_bytes: _Optional[int] = ..., state_cache_entries: _Optional[int] = ..., engine: _Optional[str] = ..., replicas: _Optional[_Iterable[_Union[_models_pb2.EngineReplica, _Mapping]]] = ..., problem: _Optional[str] = ..., first_token: _Optional[_Union[Latency, _Mapping]] = ..., turn: _Optional[_Union[Latency, _Mapping]] = ...) -> None: ...

class Latency(_message.Message):
    __slots__ = ("p50_seconds", "p95_seconds", "p99_seconds")
    P50_SECONDS_FIELD_NUMBER: _ClassVar[int]
    P95_SECONDS_FIELD_NUMBER: _ClassVar[int]
    P99_SECONDS_FIELD_NUMBER: _ClassVar[int]
    p50_seconds: float
    p95_seconds: float
    p99_seconds: float
    def __init__(self, p50_seconds: _Optional[float] = ..., p95_seconds: _Optional[float] = ..., p99_seconds: _Optional[float] = ...) -> None: ...

class StatusSnapshot(_message.Message):
    __slots__ = ("version", "uptime_seconds", "models", "agents", "active_turns", "memory_budget_bytes")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    UPTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_TURNS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BUDGET_BYTES_FIELD_NUMBER: _ClassVar[int]
    version: str
    uptime_seconds: float
    models: _containers.RepeatedCompositeFieldContainer[ModelStatus]
    agents: int
    active_turns: int
    memory_budget_bytes: int
    def __init__(self, version: _Optional[str] = ..., uptime_seconds: _Optional[float] = ..., models: _Optional[_Iterable[_Union[ModelStatus, _Mapping]]] = ..., agents: _Optional[int] = ..., active_turns: _Optional[int] = ..., memory_budget_bytes: _Optional[int] = ...) -> None: ...
