"""What one audit record holds, how its payload is formed under the content policy, and how a
stored row turns back into a record."""

from __future__ import annotations

import json
import os
import pwd
from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass
from datetime import datetime
from typing import Any, Literal, get_args

from cryptography.exceptions import InvalidTag

from enclaved.audit.crypto import encode_fields, payload_aad
from enclaved.audit.errors import AuditError, AuditKeyError
from enclaved.audit.keys import Keyring
from enclaved.audit.times import format_time
from enclaved.errors import InvalidArgument

# Every action the log knows; a typo in a literal is a type error, an unknown string at run
# time an InvalidArgument (docs/audit.md lists what each one records).
Action = Literal[
    "daemon.start",
    "daemon.stop",
    "client.connect",
    "model.load",
    "model.unload",
    "model.evict",
    "agent.create",
    "agent.update",
    "agent.delete",
    "agent.damaged",
    "chat.request",
    "chat.completion",
    "chat.cancel",
    "chat.error",
    "chat.abandoned",
    "team.create",
    "team.update",
    "team.delete",
    "team.damaged",
    "team.run",
    "team.guard",
    "team.end",
    "audit.verify",
    "audit.export",
    "audit.read",
    "audit.prune",
    "audit.rotate",
    "audit.recovered",
    "audit.new",
    "access.denied",
    "apikey.create",
    "apikey.revoke",
]
ACTIONS: frozenset[str] = frozenset(get_args(Action))
OUTCOMES = ("ok", "error", "denied", "cancelled")
ContentPolicy = Literal["full", "digest", "none"]
CONTENT_POLICIES: tuple[ContentPolicy, ...] = ("full", "digest", "none")
MAX_PAYLOAD_BYTES = 16 * 1024 * 1024
_MAX_NAME = 256
_RESERVED = ("text", "text_hmac", "text_omitted")


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
class Entry:
    """One event to record, as the daemon states it; the log adds seq, time, key, hash and seal.

    ``payload`` (usage, timings…) is stored encrypted as given; ``text`` (prompt, completion,
    system prompt) is stored encrypted in full, as a keyed digest, or not at all, as the
    content policy says. Who acted goes beside the entry (``AuditLog.append(entry, actor)``):
    the recorder fills it in from the call being served."""

    action: Action
    _: KW_ONLY
    agent: str | None = None
    model: str | None = None
    turn: str | None = None
    outcome: str = "ok"
    payload: dict[str, Any] | None = None
    text: dict[str, str] | None = None


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


def check_entry(entry: Entry, actor: Actor) -> None:
    if entry.action not in ACTIONS:
        raise InvalidArgument(f"unknown audit action {entry.action!r}; use one of enclaved.audit.Action")
    if entry.outcome not in OUTCOMES:
        raise InvalidArgument(f"audit outcome must be one of {', '.join(OUTCOMES)}")
    if not actor.auth or len(actor.auth) > _MAX_NAME:
        raise InvalidArgument("audit actor needs an auth method (e.g. 'peercred') of at most 256 characters")
    for ident in (actor.uid, actor.pid):
        if ident is not None and (type(ident) is not int or not 0 <= ident < 2**63):
            raise InvalidArgument("audit actor uid and pid must be non-negative integers or None")
    for name in (actor.user, entry.agent, entry.model, entry.turn):
        if name is not None and (not isinstance(name, str) or len(name) > _MAX_NAME):
            raise InvalidArgument("audit actor user, agent, model and turn must be strings of at most 256 characters")


def build_payload(keyring: Keyring, policy: ContentPolicy, entry: Entry) -> bytes:
    """The plaintext to encrypt: the entry's ``payload`` as given, plus its ``text`` as the
    policy says: "full" keeps it, "digest" keeps an HMAC under the current data key (so a
    known text can be matched, but not guessed offline without the key), "none" keeps only
    the field names."""
    doc: dict[str, Any] = dict(entry.payload or {})
    text = entry.text
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

    def describe(self) -> dict[str, Any]:
        """The filters as an audit record's payload states them."""
        return {
            "since": None if self.since is None else format_time(self.since),
            "until": None if self.until is None else format_time(self.until),
            "actor": self.actor,
            "agent": self.agent,
            "action": self.action,
            "outcome": self.outcome,
        }

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
