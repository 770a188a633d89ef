from enclave_contract.v1 import chat_pb2 as _chat_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TeamGuard(_message.Message):
    __slots__ = ("agent", "input", "output", "on_block", "timeout_seconds")
    AGENT_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    ON_BLOCK_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    agent: str
    input: bool
    output: str
    on_block: str
    timeout_seconds: float
    def __init__(self, agent: _Optional[str] = ..., input: _Optional[bool] = ..., output: _Optional[str] = ..., on_block: _Optional[str] = ..., timeout_seconds: _Optional[float] = ...) -> None: ...

class Team(_message.Message):
    __slots__ = ("name", "kind", "members", "director", "max_turns", "max_tokens", "timeout_seconds", "stop_text", "instructions", "guard", "busy")
    class InstructionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    DIRECTOR_FIELD_NUMBER: _ClassVar[int]
    MAX_TURNS_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    STOP_TEXT_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTIONS_FIELD_NUMBER: _ClassVar[int]
    GUARD_FIELD_NUMBER: _ClassVar[int]
    BUSY_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    members: _containers.RepeatedScalarFieldContainer[str]
    director: str
    max_turns: int
    max_tokens: int
    timeout_seconds: float
    stop_text: str
    instructions: _containers.ScalarMap[str, str]
    guard: TeamGuard
    busy: bool
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., members: _Optional[_Iterable[str]] = ..., director: _Optional[str] = ..., max_turns: _Optional[int] = ..., max_tokens: _Optional[int] = ..., timeout_seconds: _Optional[float] = ..., stop_text: _Optional[str] = ..., instructions: _Optional[_Mapping[str, str]] = ..., guard: _Optional[_Union[TeamGuard, _Mapping]] = ..., busy: _Optional[bool] = ...) -> None: ...

class ListTeamsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListTeamsResponse(_message.Message):
    __slots__ = ("teams",)
    TEAMS_FIELD_NUMBER: _ClassVar[int]
    teams: _containers.RepeatedCompositeFieldContainer[Team]
    def __init__(self, teams: _Optional[_Iterable[_Union[Team, _Mapping]]] = ...) -> None: ...

class PutTeamRequest(_message.Message):
    __slots__ = ("team",)
    TEAM_FIELD_NUMBER: _ClassVar[int]
    team: Team
    def __init__(self, team: _Optional[_Union[Team, _Mapping]] = ...) -> None: ...

class PutTeamResponse(_message.Message):
    __slots__ = ("team", "created")
    TEAM_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    team: Team
    created: bool
    def __init__(self, team: _Optional[_Union[Team, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class DeleteTeamRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteTeamResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RunTeamRequest(_message.Message):
    __slots__ = ("team", "message", "detach", "adhoc")
    TEAM_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DETACH_FIELD_NUMBER: _ClassVar[int]
    ADHOC_FIELD_NUMBER: _ClassVar[int]
    team: str
    message: str
    detach: bool
    adhoc: Team
    def __init__(self, team: _Optional[str] = ..., message: _Optional[str] = ..., detach: _Optional[bool] = ..., adhoc: _Optional[_Union[Team, _Mapping]] = ...) -> None: ...

class CancelRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class CancelRunResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
