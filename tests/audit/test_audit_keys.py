"""Keys: wrong, missing or exposed key material is refused with one clear line, in the library
and on the command line (no traceback, no plaintext)."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from enclaved.audit import AuditKeyError, AuditLog, Entry, export, verify
from tests.helpers import ACTOR, FAST, MARKER, make_log


def cli(*args: str, passphrase: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ENCLAVE_AUDIT_PASSPHRASE"}
    if passphrase is not None:
        env["ENCLAVE_AUDIT_PASSPHRASE"] = passphrase
    return subprocess.run([sys.executable, "-m", "enclaved.audit", *args], capture_output=True, text=True, env=env, timeout=60)


def assert_one_clean_line(err: str) -> None:
    assert err.count("\n") == 1 and "Traceback" not in err and MARKER not in err, err


async def _secret_log(data: Path, passphrase: str | None = None) -> Path:
    async with await AuditLog.open(data, passphrase=passphrase, config=FAST) as log:
        await log.append(Entry("chat.request", agent="a", text={"prompt": MARKER}), ACTOR)
    return data


@pytest.mark.parametrize("name", ["audit.key", "audit.verify"])
async def test_key_files_readable_by_others_are_refused(tmp_path: Path, name: str) -> None:
    data = await make_log(tmp_path, 2)
    os.chmod(data / name, 0o640)
    with pytest.raises(AuditKeyError, match=rf"{name} is readable by group or others \(mode 0640\); run: chmod 600"):
        verify(data)
    if name == "audit.key":
        with pytest.raises(AuditKeyError, match="readable by group or others"):
            await AuditLog.open(data)


async def test_a_key_file_of_another_log_is_refused(tmp_path: Path) -> None:
    data = await make_log(tmp_path / "a", 2)
    other = await make_log(tmp_path / "b", 2)
    with pytest.raises(AuditKeyError, match="belongs to another audit log"):
        verify(data, key_file=other / "audit.key")
    with pytest.raises(AuditKeyError, match="belongs to another audit log"):
        list(export(data, key_file=other / "audit.key"))
    (data / "audit.key").write_bytes((other / "audit.key").read_bytes())
    with pytest.raises(AuditKeyError, match="belongs to another audit log"):
        await AuditLog.open(data)


async def test_a_damaged_data_key_is_named_not_mistaken_for_tampering(tmp_path: Path) -> None:
    data = await make_log(tmp_path, 2)
    doc = json.loads((data / "audit.key").read_text())
    secret = bytearray(base64.b64decode(doc["keyring"]["keys"][0]["secret"]))
    secret[0] ^= 1
    doc["keyring"]["keys"][0]["secret"] = base64.b64encode(bytes(secret)).decode()
    (data / "audit.key").write_text(json.dumps(doc))
    with pytest.raises(AuditKeyError, match=r"does not match this log \(key id 1 differs\): wrong or damaged key file"):
        verify(data)
    with pytest.raises(AuditKeyError, match="wrong or damaged key file"):
        await AuditLog.open(data)
    (data / "audit.key").write_text("{not json")
    with pytest.raises(AuditKeyError, match="not an enclave audit key file"):
        await AuditLog.open(data)


async def test_a_missing_key_file_is_not_silently_replaced(tmp_path: Path) -> None:
    data = await make_log(tmp_path, 2)
    (data / "audit.key").unlink()
    with pytest.raises(AuditKeyError, match=r"audit.key is missing but the audit log .* exists; restore the key file"):
        await AuditLog.open(data)
    assert not (data / "audit.key").exists()


async def test_verify_without_a_verification_key_says_where_to_get_one(tmp_path: Path) -> None:
    data = await make_log(tmp_path, 2)
    (data / "audit.verify").rename(tmp_path / "offsite.verify")
    with pytest.raises(AuditKeyError, match=r"no verification key at .*audit.verify; pass the copy kept off this machine"):
        verify(data)
    assert verify(data, verify_key=tmp_path / "offsite.verify").ok
    async with await AuditLog.open(data) as log:  # the daemon does not need it
        await log.append(Entry("daemon.start"), ACTOR)


async def test_cli_wrong_or_missing_passphrase_is_one_line(tmp_path: Path) -> None:
    data = await _secret_log(tmp_path / "data", passphrase="right")
    for command in ("verify", "export"):
        wrong = cli(command, "--data", str(data), passphrase="wrong")
        assert wrong.returncode == 2 and wrong.stdout == ""
        assert_one_clean_line(wrong.stderr)
        assert "wrong passphrase for" in wrong.stderr
        missing = cli(command, "--data", str(data))
        assert missing.returncode == 2
        assert_one_clean_line(missing.stderr)
        assert "set ENCLAVE_AUDIT_PASSPHRASE" in missing.stderr
    good = cli("verify", "--data", str(data), passphrase="right")
    assert good.returncode == 0 and good.stdout.startswith("ok: 1 records"), good.stderr


async def test_cli_verify_export_copy_and_verify_key(tmp_path: Path) -> None:
    data = await _secret_log(tmp_path / "data")
    line = cli("verify-key", "--data", str(data))
    assert line.returncode == 0 and line.stdout.startswith("enclave-audit-verify-v1:")
    offsite = tmp_path / "auditor.verify"
    offsite.write_text(line.stdout)
    offsite.chmod(0o600)

    copied = cli("copy", "--data", str(data), "--to", str(tmp_path / "copy"))
    assert copied.returncode == 0, copied.stderr
    assert not (tmp_path / "copy" / "audit.verify").exists()
    ok = cli("verify", "--data", str(tmp_path / "copy"), "--verify-key", str(offsite))
    assert ok.returncode == 0 and ok.stdout.startswith("ok: 1 records, seq 1-1"), ok.stdout + ok.stderr

    exported = cli("export", "--data", str(tmp_path / "copy"), "--action", "chat.*")
    records = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [(r["seq"], r["action"], r["payload"]["text"]["prompt"]) for r in records] == [(1, "chat.request", MARKER)]

    with sqlite3.connect(tmp_path / "copy" / "audit.db") as conn:
        conn.execute("UPDATE records SET outcome = 'denied' WHERE seq = 1")
    bad = cli("verify", "--data", str(tmp_path / "copy"), "--verify-key", str(offsite))
    assert bad.returncode == 1 and bad.stdout.startswith("FAILED at seq 1: contents do not match the stored hash")
    export_bad = cli("export", "--data", str(tmp_path / "copy"))  # the header is the AAD: no altered record is shown
    assert export_bad.returncode == 2 and export_bad.stdout == "" and "record 1 does not decrypt" in export_bad.stderr
    assert_one_clean_line(export_bad.stderr)
    missing = cli("verify", "--data", str(tmp_path / "nowhere"), "--verify-key", str(offsite))
    assert missing.returncode == 2
    assert_one_clean_line(missing.stderr)


async def test_cli_passphrase_protects_and_unprotects_the_key(tmp_path: Path) -> None:
    data = await _secret_log(tmp_path / "data")
    env = {**os.environ, "ENCLAVE_AUDIT_NEW_PASSPHRASE": "s3cret"}
    env.pop("ENCLAVE_AUDIT_PASSPHRASE", None)
    done = subprocess.run(
        [sys.executable, "-m", "enclaved.audit", "passphrase", "--data", str(data)], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert json.loads((data / "audit.key").read_text())["protection"] == "scrypt/aes-256-gcm"
    assert cli("verify", "--data", str(data), passphrase="s3cret").returncode == 0
    removed = cli("passphrase", "--data", str(data), "--remove", passphrase="s3cret")
    assert removed.returncode == 0, removed.stderr
    assert cli("verify", "--data", str(data)).returncode == 0
