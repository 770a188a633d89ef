"""Reading a log offline, from its files: decrypted records for an auditor, and a consistent
copy of the files to take to another machine."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from enclaved.audit.errors import AuditError
from enclaved.audit.files import AuditPaths, create_private_file
from enclaved.audit.keys import read_key_file
from enclaved.audit.records import SELECT, Filters, decode_record
from enclaved.audit.schema import connect_read_only
from enclaved.audit.verify import check_key_rows


def export(
    data_dir: Path, *, passphrase: str | None = None, key_file: Path | None = None, filters: Filters = Filters()
) -> Iterator[dict[str, Any]]:
    """Every matching record as a dict (``seq``, ``time``, ``action``, ``actor``, ``agent``,
    ``model``, ``turn``, ``outcome``, ``payload``, ``key_id``, ``hash``), oldest first. A row
    that does not decrypt raises AuditError: nothing unauthenticated is ever returned."""
    paths = AuditPaths(Path(data_dir))
    key_path = Path(key_file) if key_file is not None else paths.key
    keyring, _ = read_key_file(key_path, passphrase)
    conn = connect_read_only(paths.db)
    try:
        conn.execute("BEGIN")
        meta = conn.execute("SELECT value FROM meta WHERE name = 'log_id'").fetchone()
        check_key_rows(meta[0] if meta else None, conn.execute("SELECT key_id, check_value FROM data_keys").fetchall(), keyring, key_path)
        where, params = filters.where()
        for row in conn.execute(f"{SELECT}{where} ORDER BY seq", params):
            yield decode_record(row, keyring).to_dict()
    except sqlite3.Error as exc:
        raise AuditError(f"cannot read {paths.db}: {exc}") from None
    finally:
        conn.close()


def copy_log(data_dir: Path, dest: Path) -> list[Path]:
    """Copy a log (live or not) for an auditor: the key file, sealing state and checkpoint
    first, then a snapshot of the database through SQLite's backup API, so the copy is
    consistent (the files outside the database may lag it, as verify expects, never lead).
    audit.verify is not copied: the auditor brings their own copy of it."""
    src = AuditPaths(Path(data_dir))
    out = AuditPaths(Path(dest))
    out.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if out.db.exists():
        raise AuditError(f"{out.db} already exists; copy into an empty folder")
    source = connect_read_only(src.db)  # opened now, read (the snapshot) after the files
    try:
        copied = []
        for a, b in ((src.key, out.key), (src.seal, out.seal), (src.checkpoint, out.checkpoint)):
            if a.exists():
                create_private_file(b)
                shutil.copyfile(a, b)
                copied.append(b)
        create_private_file(out.db)
        target = sqlite3.connect(out.db)
        try:
            source.backup(target)
        finally:
            target.close()
    except sqlite3.Error as exc:
        raise AuditError(f"cannot copy {src.db}: {exc}") from None
    finally:
        source.close()
    return [*copied, out.db]
