"""Starting enclaved in the background when the workbench finds none (unless ``--no-spawn``).

The daemon runs in its own session, so it outlives the workbench and the SSH connection that
started it; its log goes to a private file beside the socket.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Spawned:
    pid: int
    log: Path
    process: subprocess.Popen[bytes]

    def exited(self) -> bool:
        return self.process.poll() is not None


# systemd's notification variables belong to the service that started this workbench: a daemon
# started here would otherwise tell that service it is ready, or feed its watchdog
SERVICE_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_PID", "WATCHDOG_USEC", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")


def daemon_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES}


def spawn_daemon(socket_path: Path, daemon_args: tuple[str, ...] = ()) -> Spawned:
    """Start ``enclaved --socket SOCKET ARGS`` detached; its output goes to ``enclaved.log``."""
    socket_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    log = socket_path.parent / "enclaved.log"
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "enclaved.cli", "--socket", str(socket_path), *daemon_args],
            stdin=subprocess.DEVNULL,
            stdout=fd,
            stderr=fd,
            start_new_session=True,  # not killed with the terminal or the workbench
            env=daemon_environment(),
        )
    finally:
        os.close(fd)
    return Spawned(process.pid, log, process)
