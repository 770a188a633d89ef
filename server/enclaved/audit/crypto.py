"""The primitives every record goes through, in one place so the writer and the offline
verifier cannot drift apart.

- ``encode_fields``: an unambiguous encoding (type tag + length + bytes) of a record's fields.
- the hash chain: ``h_n = SHA-256("…/record" ‖ header_n ‖ nonce_n ‖ ciphertext_n)``, where the
  header holds ``seq``, time, actor, action, object, outcome, key id and ``h_{n-1}``.
- the seal: ``HMAC-SHA-256(K_n, "…/seal" ‖ n ‖ h_n)`` with ``K_{n+1} = SHA-256("…/evolve" ‖ K_n)``;
  the key for record *n* can only be reached by walking forward from an older key.
- the payload AEAD: AES-256-GCM, random 96-bit nonce, the header as associated data.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from collections.abc import Iterable

from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

DOMAIN = b"enclave-audit/v1/"
NONCE_LEN = 12
HASH_LEN = 32

_INT = struct.Struct(">Bq").pack
_LEN = struct.Struct(">BI").pack
_NONE = b"\x00"


def encode_fields(fields: Iterable[object]) -> bytes:
    """None → 0x00; int → 0x01 + 8-byte signed; str → 0x02 + u32 length + UTF-8;
    bytes → 0x03 + u32 length + bytes. Anything else is a TypeError."""
    out: list[bytes] = []
    for v in fields:
        # exact types (``type(v) is``): a bool or a str subclass is refused, not encoded
        if v is None:
            out.append(_NONE)
        elif type(v) is int:
            out.append(_INT(1, v))
        elif type(v) is str:
            b = v.encode()
            out.append(_LEN(2, len(b)))
            out.append(b)
        elif type(v) is bytes:
            out.append(_LEN(3, len(v)))
            out.append(v)
        else:
            raise TypeError(f"cannot encode a {type(v).__name__}")
    return b"".join(out)


def genesis_hash(log_id: bytes) -> bytes:
    """The ``prev_hash`` of record 1: binds the chain to its log, so records of one log do
    not verify as another's."""
    return hashlib.sha256(DOMAIN + b"genesis\0" + log_id).digest()


def record_hash(header: bytes, nonce: bytes, ciphertext: bytes) -> bytes:
    return hashlib.sha256(DOMAIN + b"record\0" + header + encode_fields((nonce, ciphertext))).digest()


def payload_aad(header: bytes) -> bytes:
    return DOMAIN + b"payload\0" + header


def seal(key: bytes, seq: int, digest: bytes) -> bytes:
    return hmac.digest(key, DOMAIN + b"seal\0" + seq.to_bytes(8, "big") + digest, "sha256")


def evolve(key: bytes) -> bytes:
    return hashlib.sha256(DOMAIN + b"evolve\0" + key).digest()


def evolve_by(key: bytes, steps: int) -> bytes:
    for _ in range(steps):
        key = evolve(key)
    return key


def derive(secret: bytes, label: str) -> bytes:
    """One 256-bit key per purpose from one secret (HKDF-SHA-256, the label as info)."""
    return HKDF(algorithm=SHA256(), length=32, salt=None, info=DOMAIN + label.encode()).derive(secret)


def new_nonce() -> bytes:
    return os.urandom(NONCE_LEN)
