"""Offline verification: everything an auditor needs to check a log from its files alone.

Lessons taken from journald's sealing CVEs: every record is checked with the sealing key of
its own seq (derived forward from K_1, so re-sealing with a later key fails); seqs must run
without a gap from the first record (or from an ``audit.prune`` record that accounts for the
removed ones) to the last; the sealing state and the checkpoints must not be ahead of the log
(a cut tail or an older copy); records after the newest checkpoint are verified and counted in
the summary, never skipped.
"""

from __future__ import annotations

import hmac
import json
import sqlite3
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag

from enclaved.audit.crypto import encode_fields, evolve, evolve_by, genesis_hash, payload_aad, record_hash, seal
from enclaved.audit.errors import AuditError, AuditKeyError
from enclaved.audit.files import AuditPaths
from enclaved.audit.keys import Keyring, read_key_file
from enclaved.audit.records import ACTIONS, HEADER_COLUMNS, OUTCOMES, SELECT
from enclaved.audit.schema import connect_read_only
from enclaved.audit.sealing import Checkpoint, SealState, VerifyKey, load_verify_key


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    summary: str  # one line, for people
    records: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    checkpoint_seq: int | None = None  # the newest checkpoint's
    bad_seq: int | None = None  # the first record found wrong, if a record was
    reason: str = ""


@dataclass(frozen=True)
class PruneMark:
    seq: int  # of the audit.prune record
    from_seq: int
    to_seq: int
    last_hash: bytes


class ChainWalker:
    """Checks rows in seq order, one at a time; ``check`` returns why a row is bad, or None.

    ``seal_key`` is the sealing key of ``next_seq``; with None the seals are not checked
    (the daemon's recovery on open uses that for rows whose keys it has erased)."""

    def __init__(self, keyring: Keyring, next_seq: int, prev_hash: bytes, prev_ts: str, seal_key: bytes | None) -> None:
        self.keyring = keyring
        self.next_seq = next_seq
        self.prev_hash = prev_hash
        self.prev_ts = prev_ts
        self.seal_key = seal_key
        self.prunes: list[PruneMark] = []

    def check(self, row: Sequence[Any]) -> str | None:
        seq = row[0]
        if seq != self.next_seq:
            if seq > self.next_seq:
                missing = f"{self.next_seq}" if seq == self.next_seq + 1 else f"{self.next_seq}-{seq - 1}"
                return f"seq {missing} missing: records were deleted"
            return f"unexpected seq {seq} where {self.next_seq} should be: rows were altered or reordered"
        if row[12] != self.prev_hash:
            return "prev_hash does not match the previous record's hash: records were deleted, swapped or altered"
        try:
            header = encode_fields(row[:HEADER_COLUMNS])
            digest = record_hash(header, row[13], row[14])
        except (TypeError, OverflowError, struct.error):
            return "a field has the wrong type: the record was altered"
        if digest != row[15]:
            return "contents do not match the stored hash: the record was altered"
        if self.seal_key is not None:
            if type(row[16]) is not bytes or not hmac.compare_digest(seal(self.seal_key, seq, digest), row[16]):
                return "seal is invalid: the record was altered, or re-sealed with a later key"
            self.seal_key = evolve(self.seal_key)
        ts = row[1]
        if type(ts) is not str or ts < self.prev_ts:
            return "time goes backwards: the record was altered or forged"
        if row[6] not in ACTIONS or row[10] not in OUTCOMES:
            return "unknown action or outcome: the record was forged"
        try:
            plain = self.keyring.decrypt(row[11], row[13], row[14], payload_aad(header))
        except KeyError:
            return f"key id {row[11]} is not in audit.key: restore the key file from after that rotation"
        except InvalidTag:
            return "payload does not authenticate: altered, or the wrong data key"
        if row[6] == "audit.prune":
            try:
                p = json.loads(plain)
                self.prunes.append(PruneMark(seq, int(p["from_seq"]), int(p["to_seq"]), bytes.fromhex(p["last_removed_hash"])))
            except (ValueError, KeyError, TypeError):
                return "audit.prune record does not say what it removed"
        self.prev_hash, self.prev_ts = digest, ts
        self.next_seq += 1
        return None


def verify(
    data_dir: Path,
    *,
    passphrase: str | None = None,
    key_file: Path | None = None,
    verify_key: Path | VerifyKey | None = None,
    checkpoints: Sequence[Path] = (),
) -> VerifyResult:
    """Verify the log in ``data_dir`` from its files (no daemon needed; safe while one runs).

    ``verify_key`` is the auditor's copy of audit.verify (default: the one in ``data_dir``);
    ``checkpoints`` are extra checkpoint files to hold the log against (the second copy, or
    ones the auditor kept from earlier). Missing or wrong keys raise AuditKeyError; a log
    that fails returns ``ok=False`` with the reason."""
    paths = AuditPaths(Path(data_dir))
    vk = resolve_verify_key(paths, verify_key)
    keyring, _ = read_key_file(Path(key_file) if key_file is not None else paths.key, passphrase)
    return verify_with(paths, keyring, vk, checkpoints)


def resolve_verify_key(paths: AuditPaths, verify_key: Path | VerifyKey | None) -> VerifyKey:
    if isinstance(verify_key, VerifyKey):
        return verify_key
    if verify_key is None and not paths.verify.exists():
        raise AuditKeyError(f"no verification key at {paths.verify}; pass the copy kept off this machine (--verify-key FILE)")
    return load_verify_key(Path(verify_key) if verify_key is not None else paths.verify)


def verify_with(paths: AuditPaths, keyring: Keyring, vk: VerifyKey, checkpoints: Sequence[Path] = ()) -> VerifyResult:
    # The files outside the database first: the daemon writes them after each commit, so read
    # before the database snapshot they can only lag it, never run ahead of it.
    cp_paths = [p for p in dict.fromkeys([paths.checkpoint, *map(Path, checkpoints)]) if p.exists()]
    damaged = None
    try:
        seal_state = SealState.load(paths.seal) if paths.seal.exists() else None
        cps = [(p, Checkpoint.read(p, vk.public_key())) for p in cp_paths]
    except AuditError as exc:
        damaged = exc.message
    conn = connect_read_only(paths.db)
    try:
        conn.execute("BEGIN")  # one snapshot for all the reads below
        _check_keys(conn, keyring, paths.key)
        if vk.log_id != keyring.log_id:
            raise AuditKeyError("the verification key belongs to another log")
        if damaged is not None:
            return _failed(damaged)
        return _walk(conn, keyring, vk, seal_state, cps, paths)
    except sqlite3.Error as exc:
        return _failed(f"audit.db is damaged: {exc}")
    finally:
        conn.close()


def check_key_rows(db_log_id: str | None, rows: Sequence[tuple[int, bytes]], keyring: Keyring, key_path: Path) -> None:
    """A wrong key file is named as such before any record is read."""
    if db_log_id is not None and db_log_id != keyring.log_id.hex():
        raise AuditKeyError(f"{key_path} belongs to another audit log; use the key file made with this one")
    for key_id, check_value in rows:
        if key_id not in keyring.keys:
            raise AuditKeyError(f"{key_path} lacks key id {key_id} used by this log; restore the key file from after that rotation")
        if check_value != keyring.check_value(key_id):
            raise AuditKeyError(f"{key_path} does not match this log (key id {key_id} differs): wrong or damaged key file")


def _check_keys(conn: sqlite3.Connection, keyring: Keyring, key_path: Path) -> None:
    row = conn.execute("SELECT value FROM meta WHERE name = 'log_id'").fetchone()
    check_key_rows(row[0] if row else None, conn.execute("SELECT key_id, check_value FROM data_keys").fetchall(), keyring, key_path)


def _failed(reason: str, bad_seq: int | None = None, **counts: Any) -> VerifyResult:
    where = f" at seq {bad_seq}" if bad_seq is not None else ""
    return VerifyResult(False, f"FAILED{where}: {reason}", bad_seq=bad_seq, reason=reason, **counts)


def _walk(
    conn: sqlite3.Connection,
    keyring: Keyring,
    vk: VerifyKey,
    seal_state: SealState | None,
    cps: list[tuple[Path, Checkpoint]],
    paths: AuditPaths,
) -> VerifyResult:
    for path, cp in cps:
        if cp.log_id != vk.log_id:
            return _failed(f"checkpoint {path} belongs to another log")
    if seal_state is not None and seal_state.log_id != vk.log_id:
        return _failed(f"{paths.seal} belongs to another log")
    last = conn.execute("SELECT max(seq), min(seq) FROM records").fetchone()
    last_seq, first_seq = (last[0] or 0), last[1]
    newest_cp = max((cp.seq for _, cp in cps), default=None)
    if first_seq is None:
        if (seal_state and seal_state.next_seq > 1) or (newest_cp or 0) > 0:
            return _failed("the log is empty but its sealing state or checkpoint says records were written: they were deleted")
        return VerifyResult(True, "ok: empty log", checkpoint_seq=newest_cp)
    if seal_state is None:
        return _failed(f"{paths.seal} is missing: the end of the log cannot be checked")
    if not cps or paths.checkpoint not in [p for p, _ in cps]:
        return _failed(f"{paths.checkpoint} is missing: the end of the log cannot be checked")
    if seal_state.next_seq > last_seq + 1:
        return _failed(
            f"the log ends at seq {last_seq} but the sealing state expects seq {seal_state.next_seq} next: "
            "records were cut off the end, or an older copy of the database was restored"
        )
    if not 1 <= first_seq <= seal_state.next_seq:
        return _failed(f"the first record has seq {first_seq}, outside the sealing state: records were altered")

    genesis = genesis_hash(vk.log_id)
    first_prev = conn.execute("SELECT prev_hash FROM records WHERE seq = ?", (first_seq,)).fetchone()[0]
    walker = ChainWalker(keyring, first_seq, first_prev if first_seq > 1 else genesis, "", evolve_by(vk.seal_seed, first_seq - 1))
    want = {cp.seq for _, cp in cps}
    hashes: dict[int, bytes] = {first_seq - 1: walker.prev_hash}
    key_at_state = walker.seal_key if seal_state.next_seq == first_seq else None
    count = 0
    for row in conn.execute(SELECT + " ORDER BY seq"):
        reason = walker.check(row)
        if reason is not None:
            return _failed(reason, walker.next_seq, records=count, first_seq=first_seq)
        count += 1
        if row[0] in want:
            hashes[row[0]] = walker.prev_hash
        if walker.next_seq == seal_state.next_seq:
            key_at_state = walker.seal_key
    counts = {"records": count, "first_seq": first_seq, "last_seq": last_seq, "checkpoint_seq": newest_cp}

    if first_seq > 1 and not any(p.to_seq == first_seq - 1 and p.last_hash == first_prev for p in walker.prunes):
        return _failed(f"seq 1-{first_seq - 1} are missing and no audit.prune record accounts for them", **counts)
    for p in walker.prunes:
        if not p.from_seq <= p.to_seq < first_seq:
            return _failed(
                f"the audit.prune record at seq {p.seq} claims to have removed seq {p.from_seq}-{p.to_seq}, which does not fit the log",
                **counts,
            )
    if key_at_state != seal_state.key:
        return _failed(f"{paths.seal} does not match the log's sealing chain: it was altered or belongs to another copy", **counts)
    for path, cp in cps:
        if cp.seq > last_seq:
            return _failed(
                f"checkpoint {path} covers seq {cp.seq} but the log ends at seq {last_seq}: "
                "records were cut off the end, or an older copy of the database was restored",
                **counts,
            )
        if cp.seq >= first_seq - 1 and hashes.get(cp.seq) != cp.hash:
            return _failed(f"checkpoint {path} does not match the record at seq {cp.seq}: the history was rewritten", **counts)

    notes = [f"last checkpoint at seq {newest_cp}"]
    if newest_cp is not None and newest_cp < last_seq:
        notes.append(f"{last_seq - newest_cp} records after it (sealed, not yet checkpointed)")
    if walker.prunes:
        p = walker.prunes[-1]
        notes.append(f"pruned: seq {p.from_seq}-{p.to_seq} removed (audit.prune record {p.seq})")
    return VerifyResult(True, f"ok: {count} records, seq {first_seq}-{last_seq}; " + "; ".join(notes), **counts)
