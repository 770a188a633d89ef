"""One daemon per socket path.

gRPC unlinks an existing socket file when it binds, so a second daemon would silently steal
the path from a running one. An exclusive ``flock`` on ``<socket>.lock`` prevents that; the
kernel drops the lock when its holder dies, so a crash or ``kill -9`` never blocks a restart.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from enclave_contract.paths import lock_path


class AlreadyRunning(Exception):
    def __init__(self, pid: str) -> None:
        super().__init__(pid)
        self.pid = pid


class InstanceLock:
    def __init__(self, socket_path: Path) -> None:
        self.path = lock_path(socket_path)
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise AlreadyRunning(holder) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            self.path.unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = None
