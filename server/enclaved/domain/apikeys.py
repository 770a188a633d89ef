"""API keys for the HTTP listener: named, shown once, stored only as hashes.

The keys live in ``api-keys.json`` in the data folder (0600, written whole to a temporary file
and renamed). It holds each key's name, the SHA-256 of the key and when it was made; never the
key. A key is 32 random bytes, so a plain hash cannot be reversed by guessing: no salt or slow
hash is needed, and checking a request costs one hash. Creating and revoking are recorded in
the audit log, which is where the record of who did what lives; this file only says which keys
are valid now.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import secrets
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from enclaved.audit.recorder import Recorder
from enclaved.audit.records import Entry
from enclaved.errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted

FILE_NAME = "api-keys.json"
PREFIX = "enc-"
MAX_KEYS = 1000
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


@dataclass(frozen=True)
class ApiKey:
    name: str
    digest: str  # hex SHA-256 of the key
    created: float  # Unix time

    @property
    def hint(self) -> str:
        """A few characters of the digest, to tell keys apart in a list (not of the key)."""
        return self.digest[:8]


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


class ApiKeys:
    def __init__(self, data_dir: Path, recorder: Recorder) -> None:
        self.path = data_dir / FILE_NAME
        self.recorder = recorder
        self._keys: dict[str, ApiKey] = {}
        self._by_digest: dict[str, ApiKey] = {}
        self._changing = asyncio.Lock()  # one create or revoke at a time: checks and writes agree

    def load(self) -> None:
        """Read the file (a missing one is no keys); a damaged one stops the daemon, in one line."""
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            keys = [ApiKey(str(k["name"]), str(k["digest"]), float(k["created"])) for k in raw["keys"]]
        except FileNotFoundError:
            keys = []
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise FailedPrecondition(
                f"{self.path} cannot be read ({type(exc).__name__}); restore it from a backup or move it away "
                "and create the keys again with `enclave keys create`"
            ) from None
        self._set(keys)

    def _set(self, keys: list[ApiKey]) -> None:
        self._keys = {k.name: k for k in keys}
        self._by_digest = {k.digest: k for k in keys}

    def all(self) -> list[ApiKey]:
        return sorted(self._keys.values(), key=lambda k: k.name)

    def check(self, key: str) -> ApiKey | None:
        """The key's entry, or None when it is not (or no longer) valid."""
        if not key.startswith(PREFIX) or len(key) > 256:
            return None
        return self._by_digest.get(_digest(key))

    async def create(self, name: str) -> str:
        """A new key called ``name``; returns the key itself, which is never stored."""
        if not _NAME.match(name):
            raise InvalidArgument(
                f"key name {name[:80]!r} is not allowed; use up to 64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit"
            )
        async with self._changing:
            return await self._create(name)

    async def _create(self, name: str) -> str:
        if name in self._keys:
            raise FailedPrecondition(f"a key named {name!r} exists; revoke it first (`enclave keys revoke {name}`) or pick another name")
        if len(self._keys) >= MAX_KEYS:
            raise ResourceExhausted(f"there are {MAX_KEYS} keys already; revoke some with `enclave keys revoke NAME`")
        key = PREFIX + secrets.token_urlsafe(32)
        entry = ApiKey(name, _digest(key), time.time())
        await self.recorder.record(Entry("apikey.create", payload={"name": name, "hint": entry.hint}))
        self._save([*self._keys.values(), entry])
        return key

    async def revoke(self, name: str) -> None:
        async with self._changing:
            await self._revoke(name)

    async def _revoke(self, name: str) -> None:
        gone = self._keys.get(name)
        if gone is None:
            raise NotFound(f"no key named {name[:80]!r}; `enclave keys list` shows them")
        await self.recorder.record(Entry("apikey.revoke", payload={"name": name, "hint": gone.hint}))
        self._save([k for k in self._keys.values() if k.name != name])

    def _save(self, keys: list[ApiKey]) -> None:
        data = {"keys": [{"name": k.name, "digest": k.digest, "created": k.created} for k in keys]}
        fd, tmp = tempfile.mkstemp(prefix=".api-keys-", dir=self.path.parent)  # 0600
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=1)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise FailedPrecondition(f"cannot write {self.path} ({exc.strerror}); check the data folder's space and permissions") from None
        self._set(keys)
