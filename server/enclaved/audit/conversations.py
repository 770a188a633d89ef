"""Agents' transcripts and settings, kept in audit.db beside the audit records and encrypted
with the same data keys, so a daemon restart or crash loses no conversation.

Each row is AES-256-GCM with associated data that binds it to its agent, its row id, its key
id and its position in the agent's transcript (0, 1, 2, … since the last clear), so a
ciphertext cannot be moved to another agent or place, and a row deleted from the middle
shows as a gap. Each agent's head row (``transcript_heads``, written in the same commit as
each message) holds how many messages it has, so a cut tail shows too. A row that cannot be
read, a gap or a cut tail does not stop the daemon: the conversation loads without what is
missing and is marked damaged (``Transcript.damage``) until it is cleared. Transcripts are
working data the user may clear, not evidence: they are not sealed like the audit log.
Clearing and deleting overwrite the rows (secure_delete). Rows written before positions were
bound (``_legacy_aad``) still load."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiosqlite
from cryptography.exceptions import InvalidTag

from enclaved.audit.crypto import DOMAIN, encode_fields
from enclaved.audit.errors import AuditError, AuditKeyError
from enclaved.audit.keys import Keyring
from enclaved.audit.schema import fetch_all
from enclaved.audit.writer import Statement, Writer
from enclaved.errors import InvalidArgument

GAP_SEARCH = 64  # positions looked ahead for the row after a gap


@dataclass(frozen=True)
class TranscriptMessage:
    role: str
    content: str
    turn_id: str
    finish_reason: str = ""
    context_tokens: int = 0  # a reply's: how full the context was when it ended (0: not kept)
    dropped_messages: int = 0  # a reply's: oldest messages its prompt left out (0: none, or not kept)


@dataclass
class Transcript:
    messages: list[TranscriptMessage] = field(default_factory=list)
    damage: str = ""  # why the stored transcript is incomplete; "" when it is whole
    next_position: int = 0


def _message_aad(agent: str, message_id: int, key_id: int, position: int) -> bytes:
    return DOMAIN + b"message2\0" + encode_fields((agent, message_id, key_id, position))


def _legacy_aad(agent: str, message_id: int, key_id: int) -> bytes:
    return DOMAIN + b"message\0" + encode_fields((agent, message_id, key_id))


def _head_aad(agent: str, key_id: int) -> bytes:
    return DOMAIN + b"transcript-head\0" + encode_fields((agent, key_id))


def _agent_aad(name: str, key_id: int) -> bytes:
    return DOMAIN + b"agent\0" + encode_fields((name, key_id))


def _team_aad(name: str, key_id: int) -> bytes:
    return DOMAIN + b"team\0" + encode_fields((name, key_id))


def _json(obj: Any) -> bytes:
    try:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"agent settings are not plain JSON data ({type(exc).__name__})") from None


class Conversations:
    def __init__(self, writer: Writer, reader: aiosqlite.Connection, keyring: Callable[[], Keyring]) -> None:
        self._writer = writer
        self._reader = reader
        self._keyring = keyring

    async def save_message(
        self,
        agent: str,
        position: int,
        role: str,
        content: str,
        turn_id: str,
        finish_reason: str = "",
        context_tokens: int = 0,
        dropped_messages: int = 0,
    ) -> None:
        """Store message ``position`` (0-based, since the last clear) of ``agent``'s transcript;
        returns once it is on disk. A reply's figures (``context_tokens``, ``dropped_messages``)
        go in its encrypted body only when not 0; a row without them reads as 0, so rows
        written before they were kept load as they are (no column, no migration)."""
        doc: dict[str, Any] = {"role": role, "content": content, "turn_id": turn_id, "finish_reason": finish_reason}
        figures = {"context_tokens": context_tokens, "dropped_messages": dropped_messages}
        body = _json({**doc, **{k: v for k, v in figures.items() if v}})

        def build(w: Writer) -> tuple[list[Statement], None]:
            message_id, key_id = w.next_message_id(), w.keyring.current
            nonce, ct = w.keyring.encrypt(key_id, body, _message_aad(agent, message_id, key_id, position))
            head_nonce, head = w.keyring.encrypt(key_id, _json({"messages": position + 1}), _head_aad(agent, key_id))
            return [
                ("INSERT INTO messages VALUES (?, ?, ?, ?, ?)", (message_id, agent, key_id, nonce, ct)),
                ("INSERT OR REPLACE INTO transcript_heads VALUES (?, ?, ?, ?)", (agent, key_id, head_nonce, head)),
            ], None

        await self._writer.submit(build)

    async def load_transcripts(self) -> dict[str, Transcript]:
        """Every agent's transcript; rows that cannot be read, and gaps, mark it damaged."""
        keyring = self._keyring()
        out: dict[str, Transcript] = {}
        rows = await fetch_all(self._reader, "SELECT id, agent, key_id, nonce, body FROM messages ORDER BY id")
        positioned: set[str] = set()  # agents with rows that carry their position
        for message_id, agent, key_id, nonce, body in rows:
            t = out.setdefault(agent, Transcript())
            doc = None
            for position in range(t.next_position, t.next_position + GAP_SEARCH):
                doc = _open(keyring, key_id, nonce, body, _message_aad(agent, message_id, key_id, position), agent)
                if doc is not None:
                    if position > t.next_position:
                        t.damage = t.damage or f"{position - t.next_position} message(s) missing before message {position + 1}"
                    t.next_position = position + 1
                    positioned.add(agent)
                    break
            if doc is None:
                doc = _open(keyring, key_id, nonce, body, _legacy_aad(agent, message_id, key_id), agent)
                if doc is None:
                    t.damage = t.damage or f"message {t.next_position + 1} cannot be decrypted (altered, or the wrong key)"
                    t.next_position += 1
                    continue
                t.next_position += 1
            t.messages.append(
                TranscriptMessage(
                    doc["role"],
                    doc["content"],
                    doc["turn_id"],
                    doc["finish_reason"],
                    doc.get("context_tokens", 0),
                    doc.get("dropped_messages", 0),
                )
            )
        heads = await fetch_all(self._reader, "SELECT agent, key_id, nonce, body FROM transcript_heads")
        headed = set()
        for agent, key_id, nonce, body in heads:
            headed.add(agent)
            t = out.setdefault(agent, Transcript())
            head = _open(keyring, key_id, nonce, body, _head_aad(agent, key_id), agent)
            if head is None:
                t.damage = t.damage or "its head record cannot be decrypted, so a cut tail would go unseen"
            elif head["messages"] > t.next_position:
                missing = head["messages"] - t.next_position
                t.damage = t.damage or f"the last {missing} message(s) are missing"
                t.next_position = head["messages"]
        for agent in positioned - headed:
            out[agent].damage = out[agent].damage or "its head record is missing, so a cut tail would go unseen"
        return out

    async def clear(self, agent: str) -> None:
        """Remove ``agent``'s transcript; its settings stay."""
        statements = [("DELETE FROM messages WHERE agent = ?", (agent,)), ("DELETE FROM transcript_heads WHERE agent = ?", (agent,))]
        await self._writer.submit(lambda w: (statements, None))

    async def delete_agent(self, agent: str) -> None:
        """Remove ``agent``'s transcript and settings."""
        statements = [
            ("DELETE FROM messages WHERE agent = ?", (agent,)),
            ("DELETE FROM transcript_heads WHERE agent = ?", (agent,)),
            ("DELETE FROM agents WHERE name = ?", (agent,)),
        ]
        await self._writer.submit(lambda w: (statements, None))

    async def save_agent(self, name: str, settings: dict[str, Any]) -> None:
        """Store (or replace) ``name``'s settings, a JSON-able dict."""
        body = _json(settings)

        def build(w: Writer) -> tuple[list[Statement], None]:
            key_id = w.keyring.current
            nonce, ct = w.keyring.encrypt(key_id, body, _agent_aad(name, key_id))
            return [("INSERT OR REPLACE INTO agents VALUES (?, ?, ?, ?)", (name, key_id, nonce, ct))], None

        await self._writer.submit(build)

    async def load_agents(self) -> dict[str, dict[str, Any] | None]:
        """Every stored agent's settings; None for one whose row cannot be decrypted."""
        keyring = self._keyring()
        rows = await fetch_all(self._reader, "SELECT name, key_id, nonce, body FROM agents ORDER BY name")
        out: dict[str, dict[str, Any] | None] = {}
        for name, key_id, nonce, body in rows:
            try:
                out[name] = _decrypt(keyring, key_id, nonce, body, _agent_aad(name, key_id), f"agent {name!r}'s settings")
            except AuditKeyError:
                raise
            except AuditError:
                out[name] = None
        return out

    async def save_team(self, name: str, settings: dict[str, Any]) -> None:
        """Store (or replace) team ``name``'s settings, a JSON-able dict, encrypted like an agent's."""
        body = _json(settings)

        def build(w: Writer) -> tuple[list[Statement], None]:
            key_id = w.keyring.current
            nonce, ct = w.keyring.encrypt(key_id, body, _team_aad(name, key_id))
            return [("INSERT OR REPLACE INTO teams VALUES (?, ?, ?, ?)", (name, key_id, nonce, ct))], None

        await self._writer.submit(build)

    async def delete_team(self, name: str) -> None:
        await self._writer.submit(lambda w: ([("DELETE FROM teams WHERE name = ?", (name,))], None))

    async def load_teams(self) -> dict[str, dict[str, Any] | None]:
        """Every stored team's settings; None for one whose row cannot be decrypted."""
        keyring = self._keyring()
        rows = await fetch_all(self._reader, "SELECT name, key_id, nonce, body FROM teams ORDER BY name")
        out: dict[str, dict[str, Any] | None] = {}
        for name, key_id, nonce, body in rows:
            try:
                out[name] = _decrypt(keyring, key_id, nonce, body, _team_aad(name, key_id), f"team {name!r}'s settings")
            except AuditKeyError:
                raise
            except AuditError:
                out[name] = None
        return out


def _open(keyring: Keyring, key_id: int, nonce: bytes, body: bytes, aad: bytes, agent: str) -> Any:
    """A message row's JSON, or None if it does not authenticate under ``aad``."""
    try:
        return _decrypt(keyring, key_id, nonce, body, aad, f"agent {agent!r}'s transcript")
    except AuditKeyError:
        raise
    except AuditError:
        return None


def _decrypt(keyring: Keyring, key_id: int, nonce: bytes, body: bytes, aad: bytes, what: str) -> Any:
    try:
        return json.loads(keyring.decrypt(key_id, nonce, body, aad))
    except KeyError:
        raise AuditKeyError(f"{what} uses key id {key_id}, which audit.key does not hold; restore the key file") from None
    except (InvalidTag, TypeError, ValueError):
        raise AuditError(f"{what} cannot be decrypted: altered, or the wrong key") from None
