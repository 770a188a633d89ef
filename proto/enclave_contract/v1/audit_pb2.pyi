from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AuditQuery(_message.Message):
    __slots__ = ("since", "until", "actor", "agent", "action", "outcome")
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    since: str
    until: str
    actor: str
    agent: str
    action: str
    outcome: str
    def __init__(self, since: _Optional[str] = ..., until: _Optional[str] = ..., actor: _Optional[str] = ..., agent: _Optional[str] = ..., action: _Optional[str] = ..., outcome: _Optional[str] = ...) -> None: ...

class AuditActor(_message.Message):
    __slots__ = ("user", "uid", "pid", "auth")
    USER_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    AUTH_FIELD_NUMBER: _ClassVar[int]
    user: str
    uid: int
    pid: int
    auth: str
    def __init__(self, user: _Optional[str] = ..., uid: _Optional[int] = ..., pid: _Optional[int] = ..., auth: _Optional[str] = ...) -> None: ...

class AuditRecord(_message.Message):
    __slots__ = ("seq", "time", "actor", "action", "agent", "model", "turn", "outcome", "payload_json", "hash")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TURN_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_JSON_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    seq: int
    time: str
    actor: AuditActor
    action: str
    agent: str
    model: str
    turn: str
    outcome: str
    payload_json: str
    hash: str
    def __init__(self, seq: _Optional[int] = ..., time: _Optional[str] = ..., actor: _Optional[_Union[AuditActor, _Mapping]] = ..., action: _Optional[str] = ..., agent: _Optional[str] = ..., model: _Optional[str] = ..., turn: _Optional[str] = ..., outcome: _Optional[str] = ..., payload_json: _Optional[str] = ..., hash: _Optional[str] = ...) -> None: ...

class AuditCountRequest(_message.Message):
    __slots__ = ("query",)
    QUERY_FIELD_NUMBER: _ClassVar[int]
    query: AuditQuery
    def __init__(self, query: _Optional[_Union[AuditQuery, _Mapping]] = ...) -> None: ...

class AuditCountResponse(_message.Message):
    __slots__ = ("count",)
    COUNT_FIELD_NUMBER: _ClassVar[int]
    count: int
    def __init__(self, count: _Optional[int] = ...) -> None: ...

class AuditRowsRequest(_message.Message):
    __slots__ = ("query", "offset", "limit")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    query: AuditQuery
    offset: int
    limit: int
    def __init__(self, query: _Optional[_Union[AuditQuery, _Mapping]] = ..., offset: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class AuditRowsResponse(_message.Message):
    __slots__ = ("records",)
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[AuditRecord]
    def __init__(self, records: _Optional[_Iterable[_Union[AuditRecord, _Mapping]]] = ...) -> None: ...

class AuditFollowRequest(_message.Message):
    __slots__ = ("query", "last")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    query: AuditQuery
    last: int
    def __init__(self, query: _Optional[_Union[AuditQuery, _Mapping]] = ..., last: _Optional[int] = ...) -> None: ...

class AuditExportRequest(_message.Message):
    __slots__ = ("query",)
    QUERY_FIELD_NUMBER: _ClassVar[int]
    query: AuditQuery
    def __init__(self, query: _Optional[_Union[AuditQuery, _Mapping]] = ...) -> None: ...

class AuditVerifyRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AuditVerifyResponse(_message.Message):
    __slots__ = ("ok", "summary", "records", "last_seq", "checkpoint_seq", "bad_seq")
    OK_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_SEQ_FIELD_NUMBER: _ClassVar[int]
    BAD_SEQ_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    summary: str
    records: int
    last_seq: int
    checkpoint_seq: int
    bad_seq: int
    def __init__(self, ok: _Optional[bool] = ..., summary: _Optional[str] = ..., records: _Optional[int] = ..., last_seq: _Optional[int] = ..., checkpoint_seq: _Optional[int] = ..., bad_seq: _Optional[int] = ...) -> None: ...

class AuditRotateKeyRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AuditRotateKeyResponse(_message.Message):
    __slots__ = ("key_id",)
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    key_id: int
    def __init__(self, key_id: _Optional[int] = ...) -> None: ...
