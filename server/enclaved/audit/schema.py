"""The SQLite layout of audit.db and how it is opened: one writer in WAL mode with
synchronous=FULL (a commit is on disk when it returns), readers on their own connections."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import aiosqlite

from enclaved.audit.errors import AuditError

FORMAT_VERSION = "1"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS data_keys (key_id INTEGER PRIMARY KEY, created TEXT NOT NULL, check_value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY,
    ts TEXT NOT NULL,
    actor_user TEXT,
    actor_uid INTEGER,
    actor_pid INTEGER,
    actor_auth TEXT NOT NULL,
    action TEXT NOT NULL,
    agent TEXT,
    model TEXT,
    turn TEXT,
    outcome TEXT NOT NULL,
    key_id INTEGER NOT NULL,
    prev_hash BLOB NOT NULL,
    nonce BLOB NOT NULL,
    payload BLOB NOT NULL,
    hash BLOB NOT NULL,
    seal BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS records_ts ON records (ts);
CREATE INDEX IF NOT EXISTS records_action ON records (action);
CREATE INDEX IF NOT EXISTS records_agent ON records (agent);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY, agent TEXT NOT NULL, key_id INTEGER NOT NULL, nonce BLOB NOT NULL, body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_agent ON messages (agent, id);
CREATE TABLE IF NOT EXISTS agents (
    name TEXT PRIMARY KEY, key_id INTEGER NOT NULL, nonce BLOB NOT NULL, body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS teams (
    name TEXT PRIMARY KEY, key_id INTEGER NOT NULL, nonce BLOB NOT NULL, body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS transcript_heads (
    agent TEXT PRIMARY KEY, key_id INTEGER NOT NULL, nonce BLOB NOT NULL, body BLOB NOT NULL
);
"""

# secure_delete: pruned or cleared rows are overwritten with zeros, not left in free pages.
# temp_store: sorts and temporary indexes stay in memory, never in temporary files.
WRITER_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    "PRAGMA secure_delete=ON",
    "PRAGMA temp_store=MEMORY",
    "PRAGMA busy_timeout=10000",
)

INSERT_RECORD = f"INSERT INTO records VALUES ({', '.join('?' * 17)})"


Row = tuple[Any, ...]


async def fetch_all(conn: aiosqlite.Connection, sql: str, params: Sequence[Any] = ()) -> list[Row]:
    """Every row of a query. aiosqlite declares ``execute_fetchall`` as an Iterable of
    ``sqlite3.Row``; with no row factory (none is set on these connections) it returns a list
    of plain tuples, which is what this says."""
    return cast(list[Row], await conn.execute_fetchall(sql, params))


# The chat.request records since the last daemon.start that have no outcome: the turns a crash
# or kill -9 cut off (run at start, before this run's daemon.start).
OPEN_REQUESTS = """
SELECT r.agent, r.model, r.turn FROM records r
WHERE r.action = 'chat.request' AND r.seq > (SELECT coalesce(max(seq), 0) FROM records WHERE action = 'daemon.start')
  AND NOT EXISTS (SELECT 1 FROM records o WHERE o.seq > r.seq AND o.turn = r.turn
                  AND o.action IN ('chat.completion', 'chat.cancel', 'chat.error', 'chat.abandoned'))
ORDER BY r.seq
"""


def read_only_uri(db: Path) -> str:
    return db.absolute().as_uri() + "?mode=ro"


def connect_read_only(db: Path) -> sqlite3.Connection:
    """For the offline tools: never writes, never creates the database.

    An auditor's copy on read-only media, or on a full disk, cannot get the shared-memory
    file that WAL mode reads through; with no write-ahead log beside it (the daemon and
    ``audit copy`` leave none) the file is read as immutable instead."""
    if not db.is_file():
        raise AuditError(f"no audit log at {db}")
    try:
        return _open(read_only_uri(db))
    except sqlite3.Error as exc:
        wal = db.with_name(db.name + "-wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise AuditError(
                f"cannot open {db}: {exc}; its write-ahead log {wal.name} needs a writable folder: copy the folder to one"
            ) from None
        try:
            return _open(read_only_uri(db) + "&immutable=1")
        except sqlite3.Error:
            raise AuditError(f"cannot open {db}: {exc}") from None


def _open(uri: str) -> sqlite3.Connection:
    conn = sqlite3.connect(uri, uri=True, isolation_level=None)
    try:
        conn.execute("PRAGMA query_only=ON")
        conn.execute("PRAGMA temp_store=MEMORY")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error:
        conn.close()
        raise
    return conn


def truncate_wal(db: Path) -> None:
    conn = sqlite3.connect(db, timeout=10)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        conn.close()
