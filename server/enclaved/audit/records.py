"""What one audit record holds, how its payload is formed under the content policy, and how a
stored row turns back into a record."""

from __future__ import annotations

import json
import os
import pwd
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

from cryptography.exceptions import InvalidTag

from enclaved.audit.crypto import encode_fields, payload_aad
from enclaved.audit.errors import AuditError, AuditKeyError
from enclaved.errors import InvalidArgument

if TYPE_CHECKING:
    from enclaved.audit.keys import Keyring


class Action(StrEnum):
    DAEMON_START = "daemon.start"
    DAEMON_STOP = "daemon.stop"
    CLIENT_CONNECT = "client.connect"
    MODEL_LOAD = "model.load"
    MODEL_UNLOAD = "model.unload"
    MODEL_EVICT = "model.evict"
    AGENT_CREATE = "agent.create"
    AGENT_UPDATE = "agent.update"
    AGENT_DELETE = "agent.delete"
    CHAT_REQUEST = "chat.request"
    CHAT_COMPLETION = "chat.completion"
    CHAT_CANCEL = "chat.cancel"
    CHAT_ERROR = "chat.error"
    AUDIT_VERIFY = "audit.verify"
    AUDIT_EXPORT = "audit.export"
    AUDIT_PRUNE = "audit.prune"
    ACCESS_DENIED = "access.denied"


ACTIONS = frozenset(a.value for a in Action)
OUTCOMES = ("ok", "error", "denied", "cancelled")
ContentPolicy = Literal["full", "digest", "none"]
CONTENT_POLICIES: tuple[ContentPolicy, ...] = ("full", "digest", "none")
MAX_PAYLOAD_BYTES = 16 * 1024 * 1024
_MAX_NAME = 256
_RESERVED = ("text", "text_hmac", "text_omitted")

# Fixed width, so the text sorts like the time and SQL can compare it directly.
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def format_time(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise InvalidArgument("audit times must be timezone-aware (UTC)")
    return moment.astimezone(UTC).strftime(TIME_FORMAT)


def parse_time(text: str) -> datetime:
    """An ISO 8601 time (``2026-11-22``, ``2026-11-22T10:00:00Z``), UTC where it names no zone;
    ValueError if it is not one."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Actor:
    """Who did it, and how the daemon knows: ``auth`` is e.g. "peercred" (the kernel said so),
    "local-process" (the daemon itself) or "socket-owner"; fields it could not learn are None."""

    auth: str
    user: str | None = None
    uid: int | None = None
    pid: int | None = None

    @classmethod
    def this_process(cls) -> Actor:
        uid = os.getuid()
        return cls("local-process", user_name(uid), uid, os.getpid())


def user_name(uid: int) -> str | None:
    """The account name for ``uid``; None when the passwd database has none."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


@dataclass(frozen=True)
class AuditRecord:
    seq: int
    time: str  # UTC, TIME_FORMAT
    actor: Actor
    action: str
    agent: str | None
    model: str | None
    turn: str | None
    outcome: str
    payload: dict[str, Any]
    key_id: int
    hash: str  # hex

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": self.time,
            "action": self.action,
            "actor": {"user": self.actor.user, "uid": self.actor.uid, "pid": self.actor.pid, "auth": self.actor.auth},
            "agent": self.agent,
            "model": self.model,
            "turn": self.turn,
            "outcome": self.outcome,
            "payload": self.payload,
            "key_id": self.key_id,
            "hash": self.hash,
        }


# Stored columns, in the order the hash and the AAD encode them: the first HEADER_COLUMNS are
# the header (prev_hash last), then nonce, ciphertext, hash, seal.
COLUMNS = (
    "seq", "ts", "actor_user", "actor_uid", "actor_pid", "actor_auth", "action",
    "agent", "model", "turn", "outcome", "key_id", "prev_hash",
    "nonce", "payload", "hash", "seal",
)  # fmt: skip
HEADER_COLUMNS = 13
SELECT = f"SELECT {', '.join(COLUMNS)} FROM records"


def check_entry(action: str, actor: Actor, names: Sequence[str | None], outcome: str) -> None:
    if action not in ACTIONS:
        raise InvalidArgument(f"unknown audit action {action!r}; use one of enclaved.audit.Action")
    if outcome not in OUTCOMES:
        raise InvalidArgument(f"audit outcome must be one of {', '.join(OUTCOMES)}")
    if not actor.auth or len(actor.auth) > _MAX_NAME:
        raise InvalidArgument("audit actor needs an auth method (e.g. 'peercred') of at most 256 characters")
    for ident in (actor.uid, actor.pid):
        if ident is not None and (type(ident) is not int or not 0 <= ident < 2**63):
            raise InvalidArgument("audit actor uid and pid must be non-negative integers or None")
    for name in (actor.user, *names):
        if name is not None and (not isinstance(name, str) or len(name) > _MAX_NAME):
            raise InvalidArgument("audit actor user, agent, model and turn must be strings of at most 256 characters")


def build_payload(keyring: Keyring, policy: ContentPolicy, payload: dict[str, Any] | None, text: dict[str, str] | None) -> bytes:
    """The plaintext to encrypt: ``payload`` as given, plus ``text`` (prompt, completion…) as
    the policy says: "full" keeps it, "digest" keeps an HMAC under the current data key (so a
    known text can be matched, but not guessed offline without the key), "none" keeps only
    the field names."""
    doc: dict[str, Any] = dict(payload or {})
    if any(k in doc for k in _RESERVED):
        raise InvalidArgument(f"audit payload keys {', '.join(_RESERVED)} are reserved; pass text in text=")
    if text:
        if not all(isinstance(v, str) for v in text.values()):
            raise InvalidArgument("audit text fields must be strings")
        if policy == "full":
            doc["text"] = dict(text)
        elif policy == "digest":
            kid = keyring.current
            doc["text_hmac"] = {k: {"key_id": kid, "hmac": keyring.digest(kid, v)} for k, v in text.items()}
        else:
            doc["text_omitted"] = sorted(text)
    try:
        data = json.dumps(doc, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"audit payload is not plain JSON data ({type(exc).__name__})") from None
    if len(data) > MAX_PAYLOAD_BYTES:
        raise InvalidArgument(f"audit payload is over {MAX_PAYLOAD_BYTES} bytes")
    return data


def decode_record(row: Sequence[Any], keyring: Keyring) -> AuditRecord:
    """Decrypt one stored row; a row that fails to authenticate is an error, never plaintext."""
    seq, key_id = row[0], row[11]
    try:
        plain = keyring.decrypt(key_id, row[13], row[14], payload_aad(encode_fields(row[:HEADER_COLUMNS])))
    except KeyError:
        raise AuditKeyError(f"record {seq} uses key id {key_id}, which audit.key does not hold; restore the key file") from None
    except (InvalidTag, TypeError, ValueError):
        raise AuditError(f"record {seq} does not decrypt: it was altered, or this is the wrong key; run verify") from None
    return AuditRecord(
        seq=seq,
        time=row[1],
        actor=Actor(auth=row[5], user=row[2], uid=row[3], pid=row[4]),
        action=row[6],
        agent=row[7],
        model=row[8],
        turn=row[9],
        outcome=row[10],
        payload=json.loads(plain),
        key_id=key_id,
        hash=row[15].hex(),
    )


@dataclass(frozen=True)
class Filters:
    """Which records to read. ``since`` is inclusive, ``until`` exclusive; ``action`` is exact,
    or a prefix when it ends in ".*" ("chat.*"); ``actor`` is the OS user name."""

    since: datetime | None = None
    until: datetime | None = None
    actor: str | None = None
    agent: str | None = None
    action: str | None = None
    outcome: str | None = None

    def where(self, after_seq: int | None = None) -> tuple[str, list[Any]]:
        """A WHERE clause (or "") and its parameters."""
        terms: list[str] = []
        params: list[Any] = []
        if after_seq is not None:
            terms.append("seq > ?")
            params.append(after_seq)
        if self.since is not None:
            terms.append("ts >= ?")
            params.append(format_time(self.since))
        if self.until is not None:
            terms.append("ts < ?")
            params.append(format_time(self.until))
        for column, value in zip(("actor_user", "agent", "outcome"), (self.actor, self.agent, self.outcome)):
            if value is not None:
                terms.append(f"{column} = ?")
                params.append(value)
        if self.action is not None:
            if self.action.endswith(".*"):
                terms.append("substr(action, 1, ?) = ?")
                params += [len(self.action) - 1, self.action[:-1]]
            else:
                terms.append("action = ?")
                params.append(self.action)
        return (" WHERE " + " AND ".join(terms)) if terms else "", params
