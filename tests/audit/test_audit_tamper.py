"""Every class of tampering is caught, offline, with a reason that says what happened."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from enclaved.audit import AuditConfig, AuditError, AuditKeyError, AuditLog, verify
from enclaved.audit.crypto import encode_fields, evolve, payload_aad, record_hash, seal
from enclaved.audit.keys import read_key_file
from enclaved.audit.records import COLUMNS, HEADER_COLUMNS
from tests.helpers import db, fill, make_log

# What a one-byte change in each column is reported as (the record is always seq 10).
EXPECTED = {
    "seq": "seq 10 missing",
    "prev_hash": "prev_hash does not match",
    "hash": "do not match the stored hash",
    "seal": "seal is invalid",
}


def _flip(value: object) -> object:
    if isinstance(value, bytes):
        b = bytearray(value)
        b[len(b) // 2] ^= 0x01
        return bytes(b)
    if isinstance(value, str):
        return chr(ord(value[0]) ^ 0x01) + value[1:]
    assert isinstance(value, int)
    return value ^ 0x100 if value > 2 else value ^ 0x01


@pytest.fixture
async def data(tmp_path: Path) -> Path:
    return await make_log(tmp_path / "data", 20)


def test_an_untouched_log_verifies(data: Path) -> None:
    result = verify(data)
    assert result.ok, result.summary
    assert (result.records, result.first_seq, result.last_seq, result.checkpoint_seq) == (20, 1, 20, 20)
    assert result.summary == "ok: 20 records, seq 1-20; last checkpoint at seq 20"


@pytest.mark.parametrize("column", COLUMNS)
def test_one_changed_byte_in_any_column_is_caught(data: Path, column: str) -> None:
    with db(data) as conn:
        (value,) = conn.execute(f"SELECT {column} FROM records WHERE seq = 10").fetchone()
        assert value is not None
        conn.execute(f"UPDATE records SET {column} = ? WHERE seq = 10", (_flip(value),))
    result = verify(data)
    assert not result.ok
    assert result.bad_seq == 10, result.summary
    assert EXPECTED.get(column, "do not match the stored hash") in result.reason
    assert result.summary.startswith("FAILED at seq 10: ")


def test_a_deleted_row_is_caught(data: Path) -> None:
    with db(data) as conn:
        conn.execute("DELETE FROM records WHERE seq = 7")
    result = verify(data)
    assert not result.ok and result.bad_seq == 7 and "seq 7 missing: records were deleted" in result.reason


def test_two_swapped_rows_are_caught(data: Path) -> None:
    rest = ", ".join(COLUMNS[1:])
    with db(data) as conn:
        a = conn.execute(f"SELECT {rest} FROM records WHERE seq = 5").fetchone()
        b = conn.execute(f"SELECT {rest} FROM records WHERE seq = 6").fetchone()
        sets = ", ".join(f"{c} = ?" for c in COLUMNS[1:])
        conn.execute(f"UPDATE records SET {sets} WHERE seq = 5", b)
        conn.execute(f"UPDATE records SET {sets} WHERE seq = 6", a)
    result = verify(data)
    assert not result.ok and result.bad_seq == 5 and "prev_hash does not match" in result.reason


def test_a_cut_tail_is_caught(data: Path) -> None:
    with db(data) as conn:
        conn.execute("DELETE FROM records WHERE seq > 15")
    result = verify(data)
    assert not result.ok
    assert "ends at seq 15 but the sealing state expects seq 21" in result.reason


def test_a_cut_tail_with_the_sealing_state_removed_is_caught(data: Path) -> None:
    with db(data) as conn:
        conn.execute("DELETE FROM records WHERE seq > 15")
    (data / "audit.seal").unlink()
    result = verify(data)
    assert not result.ok and "audit.seal is missing" in result.reason


async def test_an_older_copy_of_the_database_beside_newer_state_is_caught(tmp_path: Path) -> None:
    data = await make_log(tmp_path / "data", 10)
    shutil.copy(data / "audit.db", tmp_path / "old.db")
    shutil.copy(data / "audit.seal", tmp_path / "old.seal")
    async with await AuditLog.open(data) as log:
        await fill(log, 10)
    shutil.copy(tmp_path / "old.db", data / "audit.db")
    result = verify(data)
    assert not result.ok and "older copy of the database was restored" in result.reason
    with pytest.raises(AuditError, match=r"older copy of audit.db was restored"):
        await AuditLog.open(data)

    # The attacker restores the old sealing state too: the checkpoint still knows better.
    shutil.copy(tmp_path / "old.seal", data / "audit.seal")
    result = verify(data)
    assert not result.ok and "checkpoint" in result.reason and "covers seq 20 but the log ends at seq 10" in result.reason


async def test_an_older_copy_of_every_file_is_caught_by_the_second_checkpoint(tmp_path: Path) -> None:
    data, copy = tmp_path / "data", tmp_path / "elsewhere" / "audit.checkpoint"
    copy.parent.mkdir()
    config = AuditConfig(checkpoint_copies=(copy,))
    await make_log(data, 10, config)
    shutil.copytree(data, tmp_path / "backup")
    async with await AuditLog.open(data, config=config) as log:
        await fill(log, 10)
    shutil.rmtree(data)
    shutil.copytree(tmp_path / "backup", data)
    assert verify(data).ok  # on its own, a complete old copy is consistent
    result = verify(data, checkpoints=[copy])
    assert not result.ok and "covers seq 20 but the log ends at seq 10" in result.reason
    with pytest.raises(AuditError, match="covers seq 20"):
        await AuditLog.open(data, config=config)


def test_resealing_with_the_current_key_is_caught(data: Path) -> None:
    """journald CVE-2023-31439: an attacker who stole today's sealing state rewrites an old
    record and re-seals from there on with the key they have. Each record's seal must be
    checked with its own seq's key, so this fails at the rewritten record."""
    keyring, _ = read_key_file(data / "audit.key", None)
    stolen = bytes.fromhex(json.loads((data / "audit.seal").read_text())["key"])
    with db(data) as conn:
        rows = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM records WHERE seq >= 10 ORDER BY seq").fetchall()
        prev = conn.execute("SELECT hash FROM records WHERE seq = 9").fetchone()[0]
        key = stolen
        for row in rows:
            fields = list(row[:HEADER_COLUMNS])
            fields[12] = prev
            if row[0] == 10:
                fields[10] = "denied"  # the lie
            header = encode_fields(fields)
            nonce, ct = keyring.encrypt(fields[11], b'{"forged":true}', payload_aad(header))
            digest = record_hash(header, nonce, ct)
            values = (*fields, nonce, ct, digest, seal(key, row[0], digest))
            conn.execute(f"UPDATE records SET {', '.join(f'{c} = ?' for c in COLUMNS)} WHERE seq = ?", (*values, row[0]))
            prev, key = digest, evolve(key)
    result = verify(data)
    assert not result.ok and result.bad_seq == 10 and "re-sealed with a later key" in result.reason


def test_an_unsealed_record_added_at_the_end_is_caught(data: Path) -> None:
    keyring, _ = read_key_file(data / "audit.key", None)
    with db(data) as conn:
        row = list(conn.execute(f"SELECT {', '.join(COLUMNS)} FROM records WHERE seq = 20").fetchone())
        fields = [21, *row[1:12], row[15]]
        header = encode_fields(fields)
        nonce, ct = keyring.encrypt(1, b"{}", payload_aad(header))
        digest = record_hash(header, nonce, ct)
        conn.execute(f"INSERT INTO records VALUES ({', '.join('?' * 17)})", (*fields, nonce, ct, digest, b"\0" * 32))
    result = verify(data)
    assert not result.ok and result.bad_seq == 21 and "seal is invalid" in result.reason


def test_deleting_the_oldest_records_without_a_prune_record_is_caught(data: Path) -> None:
    with db(data) as conn:
        conn.execute("DELETE FROM records WHERE seq <= 4")
    result = verify(data)
    assert not result.ok and "seq 1-4 are missing and no audit.prune record accounts for them" in result.reason


@pytest.mark.parametrize("damage", ["delete", "signature", "other-key"])
def test_a_missing_or_forged_checkpoint_is_caught(data: Path, tmp_path: Path, damage: str) -> None:
    path = data / "audit.checkpoint"
    if damage == "delete":
        path.unlink()
        expected = "audit.checkpoint is missing"
    elif damage == "signature":
        path.write_text(path.read_text().replace("seq 20", "seq 19"))
        expected = "bad signature"
    else:
        other = _other_log(tmp_path)
        shutil.copy(other / "audit.checkpoint", path)
        expected = "bad signature"
    result = verify(data)
    assert not result.ok and expected in result.reason


def test_a_verification_key_of_another_log_is_refused(data: Path, tmp_path: Path) -> None:
    other = _other_log(tmp_path)
    with pytest.raises(AuditKeyError, match="the verification key belongs to another log"):
        verify(data, verify_key=other / "audit.verify")


def test_an_altered_sealing_state_is_caught(data: Path) -> None:
    doc = json.loads((data / "audit.seal").read_text())
    doc["key"] = ("00" if doc["key"][:2] != "00" else "11") + doc["key"][2:]
    (data / "audit.seal").write_text(json.dumps(doc))
    result = verify(data)
    assert not result.ok and "does not match the log's sealing chain" in result.reason


def _other_log(tmp_path: Path) -> Path:
    return asyncio.run(make_log(tmp_path / "other", 20))


async def test_a_transcript_message_moved_to_another_agent_does_not_decrypt(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with await AuditLog.open(data) as log:
        await log.conversations.save_message("alice", 0, "user", "hello", "t1")
        await log.conversations.save_agent("alice", {"model": "tiny"})
    with db(data) as conn:
        conn.execute("UPDATE messages SET agent = 'mallory'")
        conn.execute("UPDATE agents SET name = 'mallory'")
    async with await AuditLog.open(data) as log:
        moved = (await log.conversations.load_transcripts())["mallory"]
        assert moved.messages == [] and "message 1 cannot be decrypted" in moved.damage
        assert await log.conversations.load_agents() == {"mallory": None}


def test_a_damaged_sealing_state_file_is_a_failed_verification(data: Path) -> None:
    (data / "audit.seal").write_text("{}")
    result = verify(data)
    assert not result.ok and "audit.seal is damaged" in result.reason
