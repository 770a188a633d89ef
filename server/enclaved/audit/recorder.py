"""Who is acting, and what the daemon writes to the audit log about it.

The gRPC call guard (``transport/guard.py``) sets ``ACTOR`` for every call from the caller's
peer credentials; tasks started for the call (a turn, a model load) inherit it, because
asyncio copies the context into new tasks. ``record`` appends with that actor and returns only once the record is on
disk: a failed write raises (``AuditError``, DATA_LOSS), so the request fails with it instead
of succeeding unrecorded.
"""

from __future__ import annotations

from contextvars import ContextVar
from pathlib import Path

from enclaved.audit import Actor, AuditConfig, AuditLog, Conversations, Entry, passphrase_from_env
from enclaved.errors import Unavailable

DAEMON = Actor.this_process()  # the daemon acting on its own (start, stop, retention)
ACTOR: ContextVar[Actor] = ContextVar("actor", default=DAEMON)


class Recorder:
    """Opened by the daemon before it serves (``open``) and closed after (``close``)."""

    def __init__(self) -> None:
        self._log: AuditLog | None = None

    async def open(self, data_dir: Path, config: AuditConfig) -> None:
        self._log = await AuditLog.open(data_dir, passphrase=passphrase_from_env(), config=config)

    async def close(self) -> None:
        if self._log is not None:
            log, self._log = self._log, None
            await log.close()

    @property
    def log(self) -> AuditLog:
        if self._log is None:
            raise Unavailable("the audit log is not open; enclaved is starting or stopping, try again")
        return self._log

    @property
    def conversations(self) -> Conversations:
        return self.log.conversations

    async def record(self, entry: Entry, actor: Actor | None = None) -> int:
        """Append ``entry`` as done by ``actor``, by default the current one (``ACTOR``); the
        sequence number once it is durable."""
        return await self.log.append(entry, actor or ACTOR.get())
