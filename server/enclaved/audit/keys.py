"""The keyring in ``audit.key``: data keys by id and the checkpoint-signing seed, stored in the
clear (mode 0600) or encrypted under a passphrase (scrypt, then AES-256-GCM).

Key hierarchy (see docs/audit.md): each data key is a random 256-bit secret; HKDF labels turn
it into the payload AEAD key, the content-digest HMAC key and a key-check key. The signing
seed is a separate random secret, so rotating data keys never changes the checkpoint key an
auditor holds. The sealing seed is a third, independent secret that never enters this file:
it goes to ``audit.verify`` for the auditor, and only its forward-evolved state stays here.
"""

from __future__ import annotations

import base64
import hmac
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from enclaved.audit.crypto import derive, new_nonce
from enclaved.audit.errors import AuditKeyError
from enclaved.audit.files import atomic_write, read_private
from enclaved.audit.times import format_time, utc_now

PASSPHRASE_ENV = "ENCLAVE_AUDIT_PASSPHRASE"
KEY_FORMAT = "enclave-audit-key/1"
DEFAULT_SCRYPT_N = 2**17  # 128 MiB with r=8; about 0.3 s here
_SCRYPT_N_RANGE = (2**14, 2**22)


def passphrase_from_env() -> str | None:
    value = os.environ.get(PASSPHRASE_ENV)
    if value is None:
        return None
    if not value:
        raise AuditKeyError(f"{PASSPHRASE_ENV} is set but empty; unset it or give the passphrase")
    return value


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


@dataclass(frozen=True)
class DataKey:
    key_id: int
    secret: bytes
    created: str


class Keyring:
    """The secrets of one log, with the keys derived from them ready to use."""

    def __init__(self, log_id: bytes, keys: dict[int, DataKey], current: int, signing_seed: bytes) -> None:
        if current not in keys:
            raise ValueError("current key id not in keyring")
        self.log_id = log_id
        self.keys = dict(keys)
        self.current = current
        self.signing_seed = signing_seed
        self.signing_key = Ed25519PrivateKey.from_private_bytes(derive(signing_seed, "checkpoint-ed25519"))
        self.checkpoint_public = self.signing_key.public_key().public_bytes_raw()
        self._aead = {i: AESGCM(derive(k.secret, "aes-256-gcm")) for i, k in keys.items()}
        self._digest = {i: derive(k.secret, "content-hmac") for i, k in keys.items()}

    @classmethod
    def generate(cls) -> Keyring:
        first = DataKey(1, os.urandom(32), format_time(utc_now()))
        return cls(os.urandom(16), {1: first}, 1, os.urandom(32))

    def rotated(self) -> Keyring:
        """A keyring whose current key is a new one; the old keys stay for reading."""
        new = DataKey(max(self.keys) + 1, os.urandom(32), format_time(utc_now()))
        return Keyring(self.log_id, {**self.keys, new.key_id: new}, new.key_id, self.signing_seed)

    def check_value(self, key_id: int) -> bytes:
        """Stored beside the data so a wrong key file gives a clear error, not a decryption
        failure on record 1. It reveals nothing about the key."""
        k = derive(self.keys[key_id].secret, "key-check")
        return hmac.digest(k, self.log_id + key_id.to_bytes(8, "big"), "sha256")

    def encrypt(self, key_id: int, plaintext: bytes, aad: bytes) -> tuple[bytes, bytes]:
        nonce = new_nonce()
        return nonce, self._aead[key_id].encrypt(nonce, plaintext, aad)

    def decrypt(self, key_id: int, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        """Raises KeyError for an unknown key id, InvalidTag when the data or key is wrong."""
        return self._aead[key_id].decrypt(nonce, ciphertext, aad)

    def digest(self, key_id: int, text: str) -> str:
        """A keyed digest of text: without the key, guessing the text is no help."""
        return hmac.digest(self._digest[key_id], text.encode(), "sha256").hex()

    def to_json(self) -> dict:
        return {
            "log_id": self.log_id.hex(),
            "current": self.current,
            "keys": [{"id": k.key_id, "secret": _b64(k.secret), "created": k.created} for k in self.keys.values()],
            "signing_seed": _b64(self.signing_seed),
        }

    @classmethod
    def from_json(cls, obj: dict) -> Keyring:
        keys = {int(k["id"]): DataKey(int(k["id"]), _unb64(k["secret"]), str(k["created"])) for k in obj["keys"]}
        if any(len(k.secret) != 32 for k in keys.values()):
            raise ValueError("bad key length")
        return cls(bytes.fromhex(obj["log_id"]), keys, int(obj["current"]), _unb64(obj["signing_seed"]))


@dataclass(frozen=True)
class Wrapping:
    """How audit.key is protected: ``kek`` is the scrypt output of the passphrase, kept so a
    rotation can re-encrypt the file without asking for the passphrase again."""

    n: int
    salt: bytes
    kek: bytes

    @classmethod
    def new(cls, passphrase: str, n: int = DEFAULT_SCRYPT_N) -> Wrapping:
        salt = os.urandom(16)
        return cls(n, salt, _scrypt(passphrase, salt, n))

    def header(self) -> dict:
        return {"format": KEY_FORMAT, "protection": "scrypt/aes-256-gcm", "scrypt": {"n": self.n, "r": 8, "p": 1, "salt": _b64(self.salt)}}


def _scrypt(passphrase: str, salt: bytes, n: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=8, p=1).derive(passphrase.encode())


def _aad(header: dict) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode()


def write_key_file(path: Path, keyring: Keyring, wrapping: Wrapping | None) -> None:
    body = keyring.to_json()
    if wrapping is None:
        doc = {"format": KEY_FORMAT, "protection": "none", "keyring": body}
    else:
        header = wrapping.header()
        nonce = new_nonce()
        ct = AESGCM(wrapping.kek).encrypt(nonce, json.dumps(body).encode(), _aad(header))
        doc = {**header, "nonce": _b64(nonce), "ciphertext": _b64(ct)}
    atomic_write(path, (json.dumps(doc, indent=1) + "\n").encode())


def read_key_file(path: Path, passphrase: str | None) -> tuple[Keyring, Wrapping | None]:
    """Load the keyring; every failure is one line that says what to do."""
    raw = read_private(path)
    damaged = AuditKeyError(f"{path} is not an enclave audit key file (damaged?); restore it from your backup")
    try:
        doc = json.loads(raw)
        protection = doc["protection"]
        if doc["format"] != KEY_FORMAT:
            raise damaged
    except (ValueError, KeyError, TypeError):
        raise damaged from None
    if protection == "none":
        if passphrase is not None:
            raise AuditKeyError(
                f"{path} is not protected by a passphrase but {PASSPHRASE_ENV} is set; unset it, "
                "or protect the key with: python -m enclaved.audit passphrase"
            )
        body, wrapping = doc.get("keyring"), None
    elif protection == "scrypt/aes-256-gcm":
        if passphrase is None:
            raise AuditKeyError(f"{path} is protected by a passphrase; set {PASSPHRASE_ENV}")
        try:
            params = doc["scrypt"]
            n, salt = int(params["n"]), _unb64(params["salt"])
            nonce, ct = _unb64(doc["nonce"]), _unb64(doc["ciphertext"])
            if not (_SCRYPT_N_RANGE[0] <= n <= _SCRYPT_N_RANGE[1]) or params["r"] != 8 or params["p"] != 1:
                raise damaged
        except (ValueError, KeyError, TypeError):
            raise damaged from None
        wrapping = Wrapping(n, salt, _scrypt(passphrase, salt, n))
        try:
            body = json.loads(AESGCM(wrapping.kek).decrypt(nonce, ct, _aad(wrapping.header())))
        except InvalidTag:
            raise AuditKeyError(f"wrong passphrase for {path} ({PASSPHRASE_ENV}), or the file was altered") from None
    else:
        raise damaged
    try:
        return Keyring.from_json(body), wrapping
    except (ValueError, KeyError, TypeError):
        raise damaged from None


def change_passphrase(path: Path, old: str | None, new: str | None, scrypt_n: int = DEFAULT_SCRYPT_N) -> None:
    """Re-protect audit.key: ``new=None`` stores it in the clear, ``old=None`` means it was."""
    keyring, _ = read_key_file(path, old)
    write_key_file(path, keyring, None if new is None else Wrapping.new(new, scrypt_n))
