"""Tamper evidence outside the database: the verification key, the forward-evolving sealing
state, and signed checkpoints.

- ``audit.verify`` holds what an auditor needs: the log id, the sealing seed K_1 and the
  checkpoint public key, as one line that can be copied off the machine.
- ``audit.seal`` holds only (next seq, K_next). Keys of records already written are gone, so
  whoever reads it cannot re-seal them; and because K_next can be checked against K_1, a
  database that ends before ``next seq`` has lost its tail.
- ``audit.checkpoint`` (and optional second copies) holds Ed25519-signed (log id, seq, hash,
  time): a restored older database, or a cut tail, no longer matches it.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from enclaved.audit.errors import AuditError, AuditKeyError
from enclaved.audit.files import atomic_write, read_private

VERIFY_PREFIX = "enclave-audit-verify-v1"
SEAL_FORMAT = "enclave-audit-seal/1"
CHECKPOINT_HEADER = "enclave-audit checkpoint v1"


@dataclass(frozen=True)
class VerifyKey:
    log_id: bytes
    seal_seed: bytes  # K_1, the sealing key of record 1
    checkpoint_key: bytes  # raw Ed25519 public key

    def encode(self) -> str:
        return f"{VERIFY_PREFIX}:{self.log_id.hex()}:{self.seal_seed.hex()}:{self.checkpoint_key.hex()}"

    @classmethod
    def decode(cls, text: str, source: str) -> VerifyKey:
        parts = text.strip().split(":")
        try:
            if len(parts) != 4 or parts[0] != VERIFY_PREFIX:
                raise ValueError
            key = cls(bytes.fromhex(parts[1]), bytes.fromhex(parts[2]), bytes.fromhex(parts[3]))
            if len(key.log_id) != 16 or len(key.seal_seed) != 32 or len(key.checkpoint_key) != 32:
                raise ValueError
            return key
        except ValueError:
            raise AuditKeyError(f"{source} is not an enclave audit verification key ({VERIFY_PREFIX}:…)") from None

    def public_key(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(self.checkpoint_key)


def load_verify_key(path: Path) -> VerifyKey:
    return VerifyKey.decode(read_private(path).decode("ascii", "replace"), str(path))


def save_verify_key(path: Path, key: VerifyKey) -> None:
    atomic_write(path, (key.encode() + "\n").encode())


@dataclass(frozen=True)
class SealState:
    log_id: bytes
    next_seq: int
    key: bytes  # K_next

    def save(self, path: Path) -> None:
        doc = {"format": SEAL_FORMAT, "log_id": self.log_id.hex(), "next_seq": self.next_seq, "key": self.key.hex()}
        atomic_write(path, json.dumps(doc).encode())

    @classmethod
    def load(cls, path: Path) -> SealState:
        raw = read_private(path)
        try:
            doc = json.loads(raw)
            if doc["format"] != SEAL_FORMAT:
                raise ValueError
            state = cls(bytes.fromhex(doc["log_id"]), int(doc["next_seq"]), bytes.fromhex(doc["key"]))
            if len(state.key) != 32 or state.next_seq < 1:
                raise ValueError
            return state
        except (ValueError, KeyError, TypeError):
            raise AuditError(f"{path} is damaged: the sealing state cannot be read") from None


@dataclass(frozen=True)
class Checkpoint:
    log_id: bytes
    seq: int  # last record covered; 0 for an empty log
    hash: bytes  # that record's hash (the genesis hash for seq 0)
    time: str  # UTC, when the checkpoint was made

    def body(self) -> bytes:
        return (f"{CHECKPOINT_HEADER}\nlog {self.log_id.hex()}\nseq {self.seq}\nhash {self.hash.hex()}\ntime {self.time}\n").encode()

    def signed(self, key: Ed25519PrivateKey) -> bytes:
        return self.body() + b"\nsig " + base64.b64encode(key.sign(self.body())) + b"\n"

    def write(self, key: Ed25519PrivateKey, paths: list[Path]) -> None:
        data = self.signed(key)
        for path in paths:
            atomic_write(path, data)

    @classmethod
    def read(cls, path: Path, public: Ed25519PublicKey) -> Checkpoint:
        """Parse and check the signature; a bad one is an AuditError naming the file."""
        try:
            text = path.read_bytes()
        except OSError as exc:
            raise AuditError(f"cannot read checkpoint {path}: {exc.strerror}") from None
        try:
            body, sig_line = text.split(b"\n\n", 1)
            body += b"\n"
            if not sig_line.startswith(b"sig ") or not sig_line.endswith(b"\n"):
                raise ValueError
            signature = base64.b64decode(sig_line[4:-1], validate=True)
            lines = body.decode("ascii").splitlines()
            if lines[0] != CHECKPOINT_HEADER or len(lines) != 5:
                raise ValueError
            fields = dict(line.split(" ", 1) for line in lines[1:])
            cp = cls(bytes.fromhex(fields["log"]), int(fields["seq"]), bytes.fromhex(fields["hash"]), fields["time"])
        except (ValueError, KeyError, UnicodeDecodeError):
            raise AuditError(f"checkpoint {path} is damaged") from None
        try:
            public.verify(signature, cp.body())
        except InvalidSignature:
            raise AuditError(f"checkpoint {path} has a bad signature (altered, or signed by another key)") from None
        return cp
