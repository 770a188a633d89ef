"""The one task that writes to audit.db.

Writes queue up as ops; the writer takes everything queued (up to ``max_batch``), runs it as
one transaction and commits it with one fsync, then resolves each op's future. An append
therefore returns only once its record is durable, and many concurrent appends share one
fsync. If a transaction fails, the writer turns *broken*: that batch, everything queued and
every later write fail with the same one-line AuditError (fail closed: no action goes
unrecorded because the log silently stopped), and the head goes back to the last commit. Only a
*probe* (``submit(..., probe=True)``, the log's recovery record) is still tried; once one
commits, ``resume`` makes the writer take writes again, and the chain goes on from that commit.
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, TypeVar

import aiosqlite

from enclaved.audit.crypto import encode_fields, evolve, payload_aad, record_hash, seal
from enclaved.audit.errors import AuditError
from enclaved.audit.keys import Keyring
from enclaved.audit.records import Actor, Entry
from enclaved.audit.schema import INSERT_RECORD
from enclaved.audit.times import format_time
from enclaved.errors import FailedPrecondition

Statement = tuple[str, tuple[Any, ...]]
Build = Callable[["Writer"], tuple[list[Statement], Any]]


@dataclass(frozen=True)
class Head:
    """The end of the chain: what the next record links to and is sealed with."""

    next_seq: int
    prev_hash: bytes
    last_ts: str  # "" before the first record
    seal_key: bytes  # K_{next_seq}


@dataclass
class _Op:
    build: Build
    future: asyncio.Future[Any]
    probe: bool = False


@dataclass
class Fault:
    """Why the writer refuses writes, since when, and how many it has refused."""

    what: str
    error: str
    since: str
    refused: int = 0


_STOP = object()


def _plain(value: str | None) -> str | None:
    """A name as a plain str (the header encoding takes exactly str, not a subclass)."""
    return None if value is None else str(value)


def describe(exc: BaseException) -> str:
    """A failure in a few words, never with data in it."""
    if isinstance(exc, sqlite3.Error):
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__


class Writer:
    def __init__(
        self,
        db: aiosqlite.Connection,
        keyring: Keyring,
        head: Head,
        next_message_id: int,
        clock: Callable[[], Any],
        max_batch: int,
        on_commit: Callable[[Head], None],
        on_fault: Callable[[Fault], None],
    ) -> None:
        self.keyring = keyring
        self.head = head  # runs ahead of the committed head while a batch is built
        self._committed = (head, keyring, next_message_id)  # what a failed batch goes back to
        self._db = db
        self._message_id = next_message_id
        self._clock = clock
        self._max_batch = max_batch
        self._on_commit = on_commit
        self._on_fault = on_fault
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._closed = False
        self.broken: AuditError | None = None
        self.fault: Fault | None = None
        self._task = asyncio.create_task(self._run(), name="audit-writer")

    async def submit(self, build: Build, *, probe: bool = False) -> Any:
        """Queue a write and wait until it is committed; returns what ``build`` returned. A
        probe is tried even while the writer is broken."""
        if not probe:
            self.check_usable(count=True)
        elif self._closed:
            raise FailedPrecondition("the audit log is closed")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Op(build, future, probe))
        return await future

    def check_usable(self, *, count: bool = False) -> None:
        """Raise the one-line error of a broken or closed writer; ``count`` a refused write."""
        if self.broken is not None:
            assert self.fault is not None
            self.fault.refused += count
            raise AuditError(self.broken.message)
        if self._closed:
            raise FailedPrecondition("the audit log is closed")

    def fail(self, what: str, exc: BaseException) -> None:
        if self.broken is None:
            error = describe(exc)
            self.broken = AuditError(f"audit log {what} failed ({error}); requests are refused until it can write again")
            self.fault = Fault(what, error, format_time(self._clock()))
            self._on_fault(self.fault)

    def resume(self) -> None:
        """Take writes again (after a probe committed and the sealing state was saved)."""
        self.broken = self.fault = None

    async def close(self) -> None:
        """Write what is queued, then stop."""
        if not self._closed:
            self._closed = True
            self._queue.put_nowait(_STOP)
        await self._task

    def record(self, entry: Entry, actor: Actor, plaintext: bytes) -> tuple[Statement, int]:
        """Form the next record from ``entry`` (checked) and its ``plaintext`` (built from the
        entry's payload and text): seq, time (never before the previous one, so time order is
        seq order), encryption with the header as AAD, hash link, seal; advance the head."""
        h = self.head
        ts = max(format_time(self._clock()), h.last_ts)
        key_id = self.keyring.current
        names = (str(entry.action), _plain(entry.agent), _plain(entry.model), _plain(entry.turn), str(entry.outcome))
        fields = (h.next_seq, ts, actor.user, actor.uid, actor.pid, actor.auth, *names, key_id, h.prev_hash)
        header = encode_fields(fields)
        nonce, ciphertext = self.keyring.encrypt(key_id, plaintext, payload_aad(header))
        digest = record_hash(header, nonce, ciphertext)
        row = fields + (nonce, ciphertext, digest, seal(h.seal_key, h.next_seq, digest))
        self.head = Head(h.next_seq + 1, digest, ts, evolve(h.seal_key))
        return (INSERT_RECORD, row), h.next_seq

    def next_message_id(self) -> int:
        self._message_id += 1
        return self._message_id - 1

    async def _run(self) -> None:
        stop = False
        while not stop:
            first = await self._queue.get()
            if first is _STOP:
                return
            batch: list[_Op] = [first]
            while len(batch) < self._max_batch and not self._queue.empty():
                op = self._queue.get_nowait()
                if op is _STOP:
                    stop = True
                    break
                batch.append(op)
            await self._write(batch)

    async def _write(self, batch: list[_Op]) -> None:
        if self.broken is not None:
            self._refuse([op for op in batch if not op.probe])
            batch = [op for op in batch if op.probe]
            if not batch:
                return
        try:
            statements: list[Statement] = []
            results = []
            for op in batch:
                stmts, result = op.build(self)
                statements += stmts
                results.append(result)
            await self._commit(statements)
        except Exception as exc:
            self.head, self.keyring, self._message_id = self._committed
            self.fail("write", exc)
            self._refuse(batch)
            return
        self._committed = (self.head, self.keyring, self._message_id)
        self._on_commit(self.head)
        for op, result in zip(batch, results):
            if not op.future.done():
                op.future.set_result(result)

    def _refuse(self, batch: list[_Op]) -> None:
        broken = self.broken
        assert broken is not None and self.fault is not None
        for op in batch:
            if not op.future.done():
                self.fault.refused += not op.probe
                op.future.set_exception(AuditError(broken.message))

    async def _commit(self, statements: list[Statement]) -> None:
        db = self._db
        await db.execute("BEGIN IMMEDIATE")
        try:
            for sql, group in itertools.groupby(statements, key=itemgetter(0)):
                await db.executemany(sql, [params for _, params in group])
            await db.execute("COMMIT")
        except BaseException:
            try:
                await db.execute("ROLLBACK")
            except Exception:
                pass  # the original error is the one to report
            raise


T = TypeVar("T")


async def complete(work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` in its own task to the end: a cancelled caller stops waiting, the work
    (and the lock it holds, and the thread it runs) goes on."""
    task = asyncio.ensure_future(work)
    task.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved: no warning
    return await asyncio.shield(task)
