"""Opening a log: keys loaded or made, the key file checked against the database, and the
head of the chain found, refusing to go on from a log that lost its tail."""

from __future__ import annotations

import logging
import os
from contextlib import suppress
from pathlib import Path
from typing import Any

import aiosqlite
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from enclaved.audit.crypto import genesis_hash
from enclaved.audit.errors import AuditError, AuditKeyError
from enclaved.audit.files import AuditPaths
from enclaved.audit.keys import Keyring, Wrapping, read_key_file, write_key_file
from enclaved.audit.records import SELECT
from enclaved.audit.schema import FORMAT_VERSION, fetch_all
from enclaved.audit.sealing import Checkpoint, SealState, VerifyKey, load_verify_key, save_verify_key
from enclaved.audit.times import format_time, utc_now
from enclaved.audit.verify import ChainWalker, check_key_rows
from enclaved.audit.writer import Head

log = logging.getLogger("enclaved.audit")


def save_state(paths: AuditPaths, copies: tuple[Path, ...], keyring: Keyring, head: Head | None, cp: Checkpoint | None) -> None:
    """The sealing state first: a checkpoint must never be ahead of it on disk."""
    if head is not None:
        SealState(keyring.log_id, head.next_seq, head.seal_key).save(paths.seal)
    if cp is not None:
        cp.write(keyring.signing_key, [paths.checkpoint, *copies])


def replace_lost_log(paths: AuditPaths, copies: tuple[Path, ...], new_log: bool, has_records: bool) -> dict[str, Any] | None:
    """Refuse a log that is gone while what it left behind says it existed: its verification
    key, or a checkpoint copy (``audit.db``, ``audit.seal`` and ``audit.checkpoint`` deleted
    would otherwise pass for a first start). With ``new_log`` (the operator said
    ``--new-audit-log``) those leftovers are moved aside, the log starts anew, and what it
    replaced is returned for its first record; None when nothing was lost."""
    traces = [p for p in (paths.verify, *copies) if p.exists()]
    if has_records or paths.seal.exists() or not traces:
        if new_log and (has_records or paths.seal.exists()):
            log.warning("--new-audit-log: the audit log in %s is intact; it goes on, nothing was replaced", paths.data_dir)
        return None
    if not new_log:
        raise AuditError(
            f"the audit log in {paths.data_dir} is gone, but {', '.join(p.name for p in traces)} show it existed; "
            "restore audit.db, audit.seal and audit.checkpoint from a backup, or start a new log with "
            "`enclaved --new-audit-log` (recorded in the new log)"
        )
    previous: dict[str, Any] = {"reason": "the previous log was lost; an operator started a new one (--new-audit-log)"}
    if paths.verify.exists():
        with suppress(AuditError):
            previous["previous_log_id"] = load_verify_key(paths.verify).log_id.hex()
    stamp = format_time(utc_now()).replace(":", "")
    moved = []
    for path in (paths.key, paths.verify, *copies):
        if path.exists():
            aside = path.with_name(f"{path.name}.lost-{stamp}")
            if path in copies:
                with suppress(AuditError, OSError):
                    cp = Checkpoint.read(path, load_verify_key(paths.verify).public_key())
                    previous["last_known_checkpoint"] = {"file": str(path), "seq": cp.seq, "hash": cp.hash.hex(), "time": cp.time}
            os.rename(path, aside)
            moved.append(str(aside))
    previous["moved_aside"] = moved
    return previous


def load_or_create_keys(paths: AuditPaths, passphrase: str | None, scrypt_n: int, has_records: bool) -> tuple[Keyring, Wrapping | None]:
    if paths.key.exists():
        return read_key_file(paths.key, passphrase)
    if has_records or paths.seal.exists():
        raise AuditKeyError(f"{paths.key} is missing but the audit log in {paths.data_dir} exists; restore the key file from your backup")
    keyring = Keyring.generate()
    wrapping = Wrapping.new(passphrase, scrypt_n) if passphrase is not None else None
    write_key_file(paths.key, keyring, wrapping)
    return keyring, wrapping


async def register_keys(db: aiosqlite.Connection, keyring: Keyring, paths: AuditPaths) -> None:
    """Check the key file against the log; record this log's id and any key ids the
    database does not know yet (a new log, or a rotation cut short by a crash)."""
    meta = await fetch_all(db, "SELECT value FROM meta WHERE name = 'log_id'")
    rows = await fetch_all(db, "SELECT key_id, check_value FROM data_keys")
    check_key_rows(meta[0][0] if meta else None, list(rows), keyring, paths.key)
    known = {key_id for key_id, _ in rows}
    missing = [k for k in keyring.keys.values() if k.key_id not in known]
    if meta and not missing:
        return
    await db.execute("BEGIN IMMEDIATE")
    if not meta:
        await db.executemany("INSERT INTO meta VALUES (?, ?)", [("log_id", keyring.log_id.hex()), ("format", FORMAT_VERSION)])
    await db.executemany("INSERT INTO data_keys VALUES (?, ?, ?)", [(k.key_id, k.created, keyring.check_value(k.key_id)) for k in missing])
    await db.execute("COMMIT")


async def recover_head(db: aiosqlite.Connection, paths: AuditPaths, keyring: Keyring, copies: tuple[Path, ...]) -> Head:
    """Find the head of the chain, refusing to go on from a log that lost its tail.

    The full history is ``verify``'s job; here only what is cheap: the sealing state and
    checkpoints against the database, and the records written after the sealing state was
    last saved (their keys can still be derived from it, so they are checked completely)."""
    first, last = (await fetch_all(db, "SELECT min(seq), coalesce(max(seq), 0) FROM records"))[0]
    public = Ed25519PublicKey.from_public_bytes(keyring.checkpoint_public)
    checkpoints = [(p, Checkpoint.read(p, public)) for p in (paths.checkpoint, *copies) if p.exists()]
    if not paths.seal.exists():
        if first is not None or any(cp.seq > 0 for _, cp in checkpoints):
            raise AuditError(
                f"{paths.seal} is missing but the log has records, so it cannot be sealed further; "
                "run verify, then move the audit.* files aside to start a new log"
            )
        seed = os.urandom(32)
        save_verify_key(paths.verify, VerifyKey(keyring.log_id, seed, keyring.checkpoint_public))
        SealState(keyring.log_id, 1, seed).save(paths.seal)
    state = SealState.load(paths.seal)
    if state.log_id != keyring.log_id:
        raise AuditError(f"{paths.seal} belongs to another audit log")
    behind = "records were cut off the end or an older copy of audit.db was restored; run verify"
    if state.next_seq > last + 1:
        raise AuditError(f"audit.db ends at seq {last} but {paths.seal} expects seq {state.next_seq} next: {behind}")
    for path, cp in checkpoints:
        if cp.log_id != keyring.log_id:
            raise AuditError(f"checkpoint {path} belongs to another audit log")
        if cp.seq > last:
            raise AuditError(f"checkpoint {path} covers seq {cp.seq} but audit.db ends at seq {last}: {behind}")
    if first is None:
        return Head(1, genesis_hash(keyring.log_id), "", state.key)
    if not any(p == paths.checkpoint for p, _ in checkpoints):
        raise AuditError(f"{paths.checkpoint} is missing; restore it from a copy, or run verify")
    if state.next_seq < first:
        raise AuditError(f"{paths.seal} is older than the first record of the log; run verify")

    async def hash_before(seq: int) -> tuple[bytes, str]:
        """The hash and time of record seq-1, as the record at seq links to it."""
        if seq == 1:
            return genesis_hash(keyring.log_id), ""
        if seq == first:
            row = await fetch_all(db, "SELECT prev_hash, '' FROM records WHERE seq = ?", (seq,))
        else:
            row = await fetch_all(db, "SELECT hash, ts FROM records WHERE seq = ?", (seq - 1,))
        return row[0][0], row[0][1]

    for path, cp in checkpoints:
        if cp.seq >= first - 1 and (await hash_before(cp.seq + 1))[0] != cp.hash:
            raise AuditError(f"checkpoint {path} does not match record {cp.seq}: the history was rewritten; run verify")
    prev_hash, prev_ts = await hash_before(state.next_seq)
    walker = ChainWalker(keyring, state.next_seq, prev_hash, prev_ts, state.key)
    for row in await fetch_all(db, f"{SELECT} WHERE seq >= ? ORDER BY seq", (state.next_seq,)):
        reason = walker.check(row)
        if reason is not None:
            raise AuditError(f"record {walker.next_seq} at the end of the log is bad ({reason}); run verify")
    seal_key = walker.seal_key
    assert seal_key is not None  # it started from the sealing state's key and only evolves
    return Head(walker.next_seq, walker.prev_hash, walker.prev_ts, seal_key)
