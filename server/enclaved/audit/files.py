"""The files of one audit log and the two ways they are written: atomically, and private."""

from __future__ import annotations

import fcntl
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from enclaved.audit.errors import AuditError, AuditKeyError
from enclaved.errors import FailedPrecondition

log = logging.getLogger("enclaved.audit")


@dataclass(frozen=True)
class AuditPaths:
    """Where one log keeps its files; all live in the daemon's data folder."""

    data_dir: Path

    @property
    def db(self) -> Path:
        return self.data_dir / "audit.db"

    @property
    def key(self) -> Path:
        return self.data_dir / "audit.key"

    @property
    def verify(self) -> Path:
        return self.data_dir / "audit.verify"

    @property
    def seal(self) -> Path:
        return self.data_dir / "audit.seal"

    @property
    def checkpoint(self) -> Path:
        return self.data_dir / "audit.checkpoint"

    @property
    def lock(self) -> Path:
        return self.data_dir / "audit.lock"


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` (mode 0600) so that a crash leaves the old or the new
    content, never a mix: write a temporary file, fsync it, rename it over, fsync the folder.
    A failed write (a full disk) removes its temporary file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_private(path: Path) -> bytes:
    """Read a secret file, refusing one that group or others may read (like ssh does)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise AuditKeyError(f"{path} does not exist") from None
    except OSError as exc:
        raise AuditKeyError(f"cannot read {path}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise AuditKeyError(f"{path} is not a regular file")
        if st.st_mode & 0o077:
            raise AuditKeyError(f"{path} is readable by group or others (mode {stat.S_IMODE(st.st_mode):04o}); run: chmod 600 {path}")
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def private_folder(folder: Path) -> None:
    """Create ``folder`` 0700, or tighten one of ours that group or others may enter (it
    holds the log, the transcripts and the keys); another user's folder is refused."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = folder.stat()
    if st.st_uid != os.getuid():
        raise AuditError(f"the data folder {folder} belongs to uid {st.st_uid}, not to this user; choose a --data folder of your own")
    if st.st_mode & 0o077:
        os.chmod(folder, 0o700)
        log.warning("data folder %s was open to other users (mode %04o); made it 0700", folder, stat.S_IMODE(st.st_mode))


def create_private_file(path: Path) -> None:
    """Create an empty 0600 file if none is there. SQLite gives its -wal and -shm files the
    mode of the database file, so making audit.db private first keeps all three private."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return
    os.close(fd)


class DirLock:
    """An exclusive flock on audit.lock: two writers would fork the hash chain."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise FailedPrecondition(f"the audit log in {path.parent} is open in another process; stop it first") from None

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing drops the flock
            self._fd = -1
