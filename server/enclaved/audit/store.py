"""``AuditLog``: the daemon's handle on the audit log and the conversation store.

One writer task (writer.py) owns every write; a second, read-only connection serves pages,
exports and followers, so readers never block the writer (WAL). After each commit a
persister task saves the forward-evolved sealing state and, at most every
``checkpoint_interval`` seconds, a signed checkpoint; both lag the database by at most one
batch, and a reopen catches up (see ``recovery.recover_head``).

When a write fails (disk full, a read-only remount, EMFILE), the log fails closed and a
recovery task tries again with backoff: once the sealing state saves and an
``audit.recovered`` record (what failed, since when, how many requests were refused) commits,
writes go on, on the same chain. Writes that must complete (key rotation, pruning, the sealing
state) run in their own task: a caller's deadline cannot cut them off halfway."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiosqlite

from enclaved.audit.conversations import Conversations
from enclaved.audit.errors import AuditError
from enclaved.audit.files import AuditPaths, DirLock, create_private_file, private_folder
from enclaved.audit.keys import DEFAULT_SCRYPT_N, Keyring, Wrapping, write_key_file
from enclaved.audit.records import (
    CONTENT_POLICIES,
    SELECT,
    Actor,
    AuditRecord,
    ContentPolicy,
    Entry,
    Filters,
    build_payload,
    check_entry,
    decode_record,
)
from enclaved.audit.recovery import load_or_create_keys, recover_head, register_keys, replace_lost_log, save_state
from enclaved.audit.schema import OPEN_REQUESTS, SCHEMA, WRITER_PRAGMAS, fetch_all, read_only_uri, truncate_wal
from enclaved.audit.sealing import Checkpoint, VerifyKey
from enclaved.audit.times import format_time, utc_now
from enclaved.audit.verify import VerifyResult, resolve_verify_key, verify_with
from enclaved.audit.writer import Fault, Head, Statement, Writer, complete, describe
from enclaved.errors import EnclaveError, FailedPrecondition, InvalidArgument

log = logging.getLogger("enclaved.audit")

_PAGE = 500
RETRY_FIRST_SECONDS = 0.2  # after a failed write, the first retry; doubling up to
RETRY_MAX_SECONDS = 5.0


@dataclass(frozen=True)
class AuditConfig:
    content_policy: ContentPolicy = "full"
    retention_days: int = 6 * 365 + 2  # six years, leap days included
    checkpoint_interval: float = 1.0  # seconds; a checkpoint also follows open, prune, rotation and close
    seal_interval: float = 0.05  # seconds; the longest the sealing state on disk lags the log
    checkpoint_copies: tuple[Path, ...] = ()  # e.g. on another disk or a mount from another machine
    max_batch: int = 1000
    scrypt_n: int = DEFAULT_SCRYPT_N  # for a key file created with a passphrase
    new_log: bool = False  # the operator's word that a lost log may be replaced (--new-audit-log)

    def __post_init__(self) -> None:
        if self.content_policy not in CONTENT_POLICIES:
            raise InvalidArgument(f"audit content policy must be one of {', '.join(CONTENT_POLICIES)}")
        if self.retention_days < 1 or self.checkpoint_interval <= 0 or self.seal_interval < 0 or self.max_batch < 1:
            raise InvalidArgument(
                "audit retention_days and max_batch must be at least 1, checkpoint_interval above 0, seal_interval not negative"
            )


class AuditLog:
    """Open with ``await AuditLog.open(data_dir)``; close with ``await log.close()``."""

    def __init__(
        self,
        paths: AuditPaths,
        config: AuditConfig,
        clock: Callable[[], datetime],
        lock: DirLock,
        db: aiosqlite.Connection,
        reader: aiosqlite.Connection,
        keyring: Keyring,
        wrapping: Wrapping | None,
        head: Head,
        next_message_id: int,
        checkpoint_seq: int,
    ) -> None:
        self.paths = paths
        self._config = config
        self._clock = clock
        self._lock = lock
        self._db = db
        self._reader = reader
        self._wrapping = wrapping
        self._writer = Writer(db, keyring, head, next_message_id, clock, config.max_batch, self._committed_to, self._faulted)
        self._committed = head
        self._saved_seq = head.next_seq
        self._checkpoint_seq = checkpoint_seq
        self._checkpoint_at = time.monotonic()
        self._dirty = asyncio.Event()
        self._new_records = asyncio.Event()
        self._persist_lock = asyncio.Lock()
        self._admin = asyncio.Lock()
        self._closing = False
        self._recovery: asyncio.Task[None] | None = None
        # Told the writer's state: a one-line error while it refuses writes, None once it
        # takes them again (the daemon's health follows it).
        self.on_state: Callable[[AuditError | None], None] = lambda _: None
        self.conversations = Conversations(self._writer, reader, lambda: self._writer.keyring)
        self._persister = asyncio.create_task(self._persist_loop(), name="audit-persister")

    # -- opening and closing -------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        data_dir: Path,
        *,
        passphrase: str | None = None,
        config: AuditConfig = AuditConfig(),
        clock: Callable[[], datetime] = utc_now,
    ) -> AuditLog:
        """Open the log in ``data_dir``, creating it (and its keys) on first use.

        Checks on the way in, each a one-line error: the key file fits this log; the sealing
        state and checkpoints are not ahead of the database (a cut tail or an older copy);
        records written after the sealing state was last saved (a crash) chain and seal."""
        paths = AuditPaths(Path(data_dir))
        for copy in config.checkpoint_copies:
            if not copy.parent.is_dir():
                raise FailedPrecondition(
                    f"the folder for checkpoint copy {copy} does not exist (not mounted?); create it or fix the setting"
                )
        try:
            private_folder(paths.data_dir)
            lock = DirLock(paths.lock)
        except OSError as exc:
            raise FailedPrecondition(f"cannot open the audit log in {paths.data_dir}: {describe(exc)}") from None
        db = reader = None
        try:
            create_private_file(paths.db)
            db = await aiosqlite.connect(paths.db, isolation_level=None)
            for pragma in WRITER_PRAGMAS:
                await db.execute(pragma)
            await db.executescript(SCHEMA)
            has_records = bool(await fetch_all(db, "SELECT 1 FROM records LIMIT 1"))
            lost = await asyncio.to_thread(replace_lost_log, paths, config.checkpoint_copies, config.new_log, has_records)
            keyring, wrapping = await asyncio.to_thread(load_or_create_keys, paths, passphrase, config.scrypt_n, has_records)
            await register_keys(db, keyring, paths)
            head = await recover_head(db, paths, keyring, config.checkpoint_copies)
            checkpoint = Checkpoint(keyring.log_id, head.next_seq - 1, head.prev_hash, format_time(clock()))
            await asyncio.to_thread(save_state, paths, config.checkpoint_copies, keyring, head, checkpoint)
            next_message_id = (await fetch_all(db, "SELECT coalesce(max(id), 0) + 1 FROM messages"))[0][0]
            reader = await aiosqlite.connect(read_only_uri(paths.db), uri=True, isolation_level=None)
            opened = cls(paths, config, clock, lock, db, reader, keyring, wrapping, head, next_message_id, checkpoint.seq)
        except sqlite3.Error as exc:
            await _close_all(db, reader, lock)
            raise AuditError(f"cannot open {paths.db}: {exc}") from None
        except OSError as exc:
            await _close_all(db, reader, lock)
            where = f" ({exc.filename})" if exc.filename else ""
            raise FailedPrecondition(f"cannot open the audit log in {paths.data_dir}: {describe(exc)}{where}") from None
        except BaseException:
            await _close_all(db, reader, lock)
            raise
        if lost is not None:  # the new log's first record says what it replaced
            try:
                await opened.append(Entry("audit.new", payload=lost), _RECOVERY_ACTOR)
            except BaseException:
                await opened.close()
                raise
        return opened

    async def close(self) -> None:
        """Write what is queued, save the sealing state and a final checkpoint, release."""
        if self._closing:
            return
        self._closing = True
        try:
            if self._recovery is not None:
                self._recovery.cancel()
            await self._writer.close()
            self._dirty.set()
            self._new_records.set()
            await self._persister
            if self._writer.broken is None:
                try:
                    await self._persist(checkpoint=True)
                except OSError as exc:
                    raise AuditError(f"audit log final checkpoint failed ({describe(exc)}); run verify") from None
        finally:
            await _close_all(self._db, self._reader, self._lock)

    async def __aenter__(self) -> AuditLog:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- writing -------------------------------------------------------------------------

    async def append(self, entry: Entry, actor: Actor) -> int:
        """Record one event done by ``actor``; returns its seq once it is committed and fsynced.

        Raises InvalidArgument for a bad entry and AuditError once the log has failed (fail
        closed). A cancelled caller's record may still be written."""
        self._writer.check_usable(count=True)
        check_entry(entry, actor)
        plaintext = build_payload(self._writer.keyring, self._config.content_policy, entry)

        def build(w: Writer) -> tuple[list[Statement], int]:
            statement, seq = w.record(entry, actor, plaintext)
            return [statement], seq

        return await self._writer.submit(build)

    async def rotate_key(self, actor: Actor) -> int:
        """Make a new data key current and record ``audit.rotate``; returns its id. Older
        records keep their key id and stay readable. The key file is rewritten first, so no
        record ever uses a key that is not on disk; the whole rotation completes even if the
        caller is cancelled."""
        return await complete(self._rotate_key(actor))

    async def _rotate_key(self, actor: Actor) -> int:
        async with self._admin:
            self._writer.check_usable()
            new = self._writer.keyring.rotated()
            await asyncio.to_thread(write_key_file, self.paths.key, new, self._wrapping)
            key = new.keys[new.current]
            entry = Entry("audit.rotate", payload={"key_id": key.key_id, "previous_key_id": self._writer.keyring.current})
            plaintext = build_payload(new, self._config.content_policy, entry)

            def build(w: Writer) -> tuple[list[Statement], int]:
                w.keyring = new
                statement, _ = w.record(entry, actor, plaintext)
                return [
                    ("INSERT INTO data_keys VALUES (?, ?, ?)", (key.key_id, key.created, new.check_value(key.key_id))),
                    statement,
                ], key.key_id

            key_id: int = await self._writer.submit(build)
        await self.checkpoint()
        return key_id

    async def prune(self, actor: Actor, *, before: datetime | None = None, reason: str = "retention period") -> int | None:
        """Delete the records older than ``before`` (default: the retention period) and, in
        the same transaction, append an ``audit.prune`` record saying what went: the seq
        range, the last removed record's hash and time, the cutoff and ``reason``. Returns
        that record's seq, or None when nothing was old enough."""
        cutoff = format_time(before if before is not None else self._clock() - timedelta(days=self._config.retention_days))
        return await complete(self._prune(actor, cutoff, reason))

    async def _prune(self, actor: Actor, cutoff: str, reason: str) -> int | None:
        async with self._admin:
            self._writer.check_usable()
            first = (await fetch_all(self._reader, "SELECT min(seq) FROM records"))[0][0]
            last = await fetch_all(
                self._reader, "SELECT seq, hash, ts FROM records WHERE seq = (SELECT max(seq) FROM records WHERE ts < ?)", (cutoff,)
            )
            if first is None or not last:
                return None
            to_seq, last_hash, last_ts = last[0]
            marker = {
                "from_seq": first,
                "to_seq": to_seq,
                "removed": to_seq - first + 1,
                "last_removed_hash": last_hash.hex(),
                "last_removed_time": last_ts,
                "cutoff": cutoff,
                "reason": reason,
            }
            entry = Entry("audit.prune", payload=marker)
            plaintext = build_payload(self._writer.keyring, self._config.content_policy, entry)

            def build(w: Writer) -> tuple[list[Statement], int]:
                statement, seq = w.record(entry, actor, plaintext)
                return [("DELETE FROM records WHERE seq <= ?", (to_seq,)), statement], seq

            seq: int = await self._writer.submit(build)
            # Move the zeroed pages into audit.db and empty the WAL, which still holds the
            # pruned rows' last page images.
            await asyncio.to_thread(truncate_wal, self.paths.db)
        await self.checkpoint()
        return seq

    async def checkpoint(self) -> int:
        """Save the sealing state and a signed checkpoint of the last committed record now;
        returns its seq."""
        self._writer.check_usable()
        await self._persist(checkpoint=True)
        return self._checkpoint_seq

    # -- reading -------------------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        """The seq of the last committed record (0 when there is none)."""
        return self._committed.next_seq - 1

    def digest(self, text: str, key_id: int | None = None) -> str:
        """The keyed digest the "digest" policy stores for ``text`` (to match a known text)."""
        keyring = self._writer.keyring
        return keyring.digest(keyring.current if key_id is None else key_id, text)

    async def open_requests(self) -> list[tuple[str, str, str]]:
        """(agent, model, turn) of each request of the last run that never got an outcome."""
        return [(agent, model, turn) for agent, model, turn in await fetch_all(self._reader, OPEN_REQUESTS)]

    async def count(self, filters: Filters = Filters()) -> int:
        where, params = filters.where()
        return (await fetch_all(self._reader, f"SELECT count(*) FROM records{where}", params))[0][0]

    async def rows(
        self, filters: Filters = Filters(), offset: int = 0, limit: int = 100, *, newest_first: bool = False
    ) -> list[AuditRecord]:
        """One page of records, decrypting only those on it (for a virtualized list)."""
        if offset < 0 or limit < 0:
            raise InvalidArgument("offset and limit must not be negative")
        where, params = filters.where()
        order = "DESC" if newest_first else "ASC"
        rows = await fetch_all(self._reader, f"{SELECT}{where} ORDER BY seq {order} LIMIT ? OFFSET ?", [*params, limit, offset])
        keyring = self._writer.keyring
        return [decode_record(row, keyring) for row in rows]

    async def export(self, actor: Actor, filters: Filters = Filters()) -> AsyncIterator[dict[str, Any]]:
        """Every matching record as a dict, oldest first; the export itself is recorded first."""
        await self.append(Entry("audit.export", payload={"filters": filters.describe()}), actor)
        async for record in self._after(filters, 0):
            yield record.to_dict()

    async def follow(self, filters: Filters = Filters(), *, last: int = 0) -> AsyncIterator[AuditRecord]:
        """The ``last`` newest matching records, then each new one as it is committed, until
        the log closes."""
        cursor = self.last_seq
        if last:
            recent = await self.rows(filters, 0, last, newest_first=True)
            for record in reversed(recent):
                yield record
            cursor = recent[0].seq if recent else cursor
        while not self._closing:
            wake = self._new_records
            seen = cursor
            async for record in self._after(filters, cursor):
                cursor = record.seq
                yield record
            if cursor == seen:
                await wake.wait()

    async def verify(self, actor: Actor, *, verify_key: Path | VerifyKey | None = None) -> VerifyResult:
        """Verify the whole log (in a worker thread; appends go on) and record that it was.
        Without ``verify_key`` it uses ``audit.verify`` in the data folder."""
        try:
            vk = resolve_verify_key(self.paths, verify_key)
            result = await asyncio.to_thread(verify_with, self.paths, self._writer.keyring, vk, self._config.checkpoint_copies)
        except EnclaveError as exc:
            await self.append(Entry("audit.verify", outcome="error", payload={"error": exc.message}), actor)
            raise
        outcome = "ok" if result.ok else "error"
        await self.append(Entry("audit.verify", outcome=outcome, payload={"summary": result.summary}), actor)
        return result

    async def _after(self, filters: Filters, seq: int) -> AsyncIterator[AuditRecord]:
        while True:
            if self._closing:
                raise FailedPrecondition("the audit log was closed during the read")
            where, params = filters.where(after_seq=seq)
            rows = await fetch_all(self._reader, f"{SELECT}{where} ORDER BY seq LIMIT {_PAGE}", params)
            keyring = self._writer.keyring
            for row in rows:
                yield decode_record(row, keyring)
            if len(rows) < _PAGE:
                return
            seq = rows[-1][0]

    # -- persistence of the sealing state and checkpoints --------------------------------

    def _committed_to(self, head: Head) -> None:
        self._committed = head
        self._dirty.set()
        self._new_records.set()
        self._new_records = asyncio.Event()

    def _checkpoint_due_in(self) -> float | None:
        if self._committed.next_seq - 1 == self._checkpoint_seq:
            return None
        return max(0.0, self._checkpoint_at + self._config.checkpoint_interval - time.monotonic())

    async def _persist_loop(self) -> None:
        """Save the sealing state after commits, at most every ``seal_interval`` seconds (its
        fsyncs would otherwise compete with the commits'), and a checkpoint when one is due."""
        while not self._closing:
            due = self._checkpoint_due_in()
            if due != 0:
                try:
                    await asyncio.wait_for(self._dirty.wait(), due)
                except TimeoutError:
                    pass
            self._dirty.clear()
            if self._closing:
                return
            if self._writer.broken is None:
                try:
                    await self._persist(checkpoint=self._checkpoint_due_in() == 0)
                except Exception as exc:
                    self._writer.fail("sealing state or checkpoint write", exc)
            await asyncio.sleep(self._config.seal_interval)

    # -- failing closed and recovering ---------------------------------------------------

    def _faulted(self, fault: Fault) -> None:
        log.error("audit log %s failed (%s): requests are refused until it can write again", fault.what, fault.error)
        self.on_state(self._writer.broken)
        if self._recovery is None and not self._closing:
            self._recovery = asyncio.create_task(self._recover(), name="audit-recovery")

    async def _recover(self) -> None:
        """Retry with backoff until the sealing state saves and a recovery record commits."""
        delay = RETRY_FIRST_SECONDS
        while not self._closing:
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_SECONDS)
            fault = self._writer.fault
            assert fault is not None
            try:
                await self._persist(checkpoint=False)  # the last good commit's state first
                await self._record_recovery(fault)
                await self._persist(checkpoint=True)
            except (OSError, AuditError, sqlite3.Error):
                continue
            self._writer.resume()
            self._recovery = None
            log.warning("audit log writes succeed again (failed since %s; %d requests refused)", fault.since, fault.refused)
            self.on_state(None)
            return

    async def _record_recovery(self, fault: Fault) -> None:
        """The probe write: an ``audit.recovered`` record saying what failed, since when and
        how many requests were refused meanwhile."""
        outage = {"failed": fault.what, "error": fault.error, "since": fault.since, "refused": fault.refused}
        entry = Entry("audit.recovered", payload=outage)
        plaintext = build_payload(self._writer.keyring, self._config.content_policy, entry)

        def build(w: Writer) -> tuple[list[Statement], None]:
            statement, _ = w.record(entry, _RECOVERY_ACTOR, plaintext)
            return [statement], None

        await self._writer.submit(build, probe=True)

    async def _persist(self, checkpoint: bool) -> None:
        await complete(self._persist_now(checkpoint))

    async def _persist_now(self, checkpoint: bool) -> None:
        async with self._persist_lock:
            head = self._committed
            seal_due = head.next_seq != self._saved_seq
            cp = None
            if checkpoint and head.next_seq - 1 != self._checkpoint_seq:
                cp = Checkpoint(self._writer.keyring.log_id, head.next_seq - 1, head.prev_hash, format_time(self._clock()))
            if not seal_due and cp is None:
                return
            await asyncio.to_thread(
                save_state, self.paths, self._config.checkpoint_copies, self._writer.keyring, head if seal_due else None, cp
            )
            self._saved_seq = head.next_seq
            if cp is not None:
                self._checkpoint_seq, self._checkpoint_at = cp.seq, time.monotonic()


_RECOVERY_ACTOR = Actor.this_process()


async def _close_all(db: aiosqlite.Connection | None, reader: aiosqlite.Connection | None, lock: DirLock) -> None:
    try:
        for conn in (reader, db):
            if conn is not None:
                await conn.close()
    finally:
        lock.release()
