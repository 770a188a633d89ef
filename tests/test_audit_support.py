"""Helpers shared by the test_audit_* modules (no tests here)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from enclaved.audit import Action, Actor, AuditConfig, AuditLog

MARKER = "ZEBRA-7731-CONFIDENTIAL"  # as in conftest: must never be found outside a decryption
ACTOR = Actor("peercred", "ann", 1000, 4242)
FAST = AuditConfig(scrypt_n=2**14)  # a passphrase key file in milliseconds, not 0.3 s


@dataclass
class Clock:
    """A settable clock for the log: records can be made years apart."""

    now: datetime = datetime(2020, 1, 1, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


async def fill(log: AuditLog, n: int, *, start: int = 0) -> list[int]:
    """n chat records with every header field set; returns their seqs."""
    seqs = []
    for i in range(start, start + n):
        seqs.append(
            await log.append(
                Action.CHAT_COMPLETION,
                ACTOR,
                agent=f"agent{i % 3}",
                model="tiny",
                turn=f"turn-{i}",
                payload={"usage": {"completion_tokens": i}, "timings": {"ms": 1.5}},
                text={"prompt": f"question {i}", "completion": f"answer {i}"},
            )
        )
    return seqs


async def make_log(data: Path, n: int = 20, config: AuditConfig = FAST) -> Path:
    async with await AuditLog.open(data, config=config) as log:
        await fill(log, n)
    return data


def db(data: Path) -> sqlite3.Connection:
    """A plain connection, as an attacker with the files would use."""
    return sqlite3.connect(data / "audit.db", isolation_level=None)


def files_in(data: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(data.iterdir()) if p.is_file()}
