"""Agents' transcripts and settings, kept in audit.db beside the audit records and encrypted
with the same data keys, so a daemon restart or crash loses no conversation.

Each row is AES-256-GCM with associated data that binds it to its agent and position (and
key id), so a ciphertext cannot be moved to another agent or place. Transcripts are not
hash-chained: they are working data the user may clear, not evidence. Clearing and deleting
overwrite the rows (secure_delete)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiosqlite
from cryptography.exceptions import InvalidTag

from enclaved.audit.crypto import DOMAIN, encode_fields
from enclaved.audit.errors import AuditError, AuditKeyError
from enclaved.audit.keys import Keyring
from enclaved.audit.schema import fetch_all
from enclaved.audit.writer import Statement, Writer
from enclaved.errors import InvalidArgument


@dataclass(frozen=True)
class TranscriptMessage:
    role: str
    content: str
    turn_id: str
    finish_reason: str = ""


def _message_aad(agent: str, message_id: int, key_id: int) -> bytes:
    return DOMAIN + b"message\0" + encode_fields((agent, message_id, key_id))


def _agent_aad(name: str, key_id: int) -> bytes:
    return DOMAIN + b"agent\0" + encode_fields((name, key_id))


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

    async def save_message(self, agent: str, role: str, content: str, turn_id: str, finish_reason: str = "") -> None:
        """Append one message to ``agent``'s transcript; returns once it is on disk."""
        body = _json({"role": role, "content": content, "turn_id": turn_id, "finish_reason": finish_reason})

        def build(w: Writer) -> tuple[list[Statement], None]:
            message_id, key_id = w.next_message_id(), w.keyring.current
            nonce, ct = w.keyring.encrypt(key_id, body, _message_aad(agent, message_id, key_id))
            return [("INSERT INTO messages VALUES (?, ?, ?, ?, ?)", (message_id, agent, key_id, nonce, ct))], None

        await self._writer.submit(build)

    async def load_transcripts(self) -> dict[str, list[TranscriptMessage]]:
        keyring = self._keyring()
        out: dict[str, list[TranscriptMessage]] = {}
        rows = await fetch_all(self._reader, "SELECT id, agent, key_id, nonce, body FROM messages ORDER BY id")
        for message_id, agent, key_id, nonce, body in rows:
            doc = _decrypt(keyring, key_id, nonce, body, _message_aad(agent, message_id, key_id), f"agent {agent!r}'s transcript")
            out.setdefault(agent, []).append(TranscriptMessage(doc["role"], doc["content"], doc["turn_id"], doc["finish_reason"]))
        return out

    async def clear(self, agent: str) -> None:
        """Remove ``agent``'s transcript; its settings stay."""
        await self._writer.submit(lambda w: ([("DELETE FROM messages WHERE agent = ?", (agent,))], None))

    async def delete_agent(self, agent: str) -> None:
        """Remove ``agent``'s transcript and settings."""
        statements = [("DELETE FROM messages WHERE agent = ?", (agent,)), ("DELETE FROM agents WHERE name = ?", (agent,))]
        await self._writer.submit(lambda w: (statements, None))

    async def save_agent(self, name: str, settings: dict[str, Any]) -> None:
        """Store (or replace) ``name``'s settings, a JSON-able dict."""
        body = _json(settings)

        def build(w: Writer) -> tuple[list[Statement], None]:
            key_id = w.keyring.current
            nonce, ct = w.keyring.encrypt(key_id, body, _agent_aad(name, key_id))
            return [("INSERT OR REPLACE INTO agents VALUES (?, ?, ?, ?)", (name, key_id, nonce, ct))], None

        await self._writer.submit(build)

    async def load_agents(self) -> dict[str, dict[str, Any]]:
        keyring = self._keyring()
        rows = await fetch_all(self._reader, "SELECT name, key_id, nonce, body FROM agents ORDER BY name")
        return {
            name: _decrypt(keyring, key_id, nonce, body, _agent_aad(name, key_id), f"agent {name!r}'s settings")
            for name, key_id, nonce, body in rows
        }


def _decrypt(keyring: Keyring, key_id: int, nonce: bytes, body: bytes, aad: bytes, what: str) -> Any:
    try:
        return json.loads(keyring.decrypt(key_id, nonce, body, aad))
    except KeyError:
        raise AuditKeyError(f"{what} uses key id {key_id}, which audit.key does not hold; restore the key file") from None
    except (InvalidTag, TypeError, ValueError):
        raise AuditError(f"{what} cannot be decrypted: altered, or the wrong key") from None
