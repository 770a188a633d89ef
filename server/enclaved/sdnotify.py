"""systemd's readiness protocol (``Type=notify``) without libsystemd: a datagram to the
socket named by ``$NOTIFY_SOCKET`` (a path, or ``@name`` in the abstract namespace).

enclaved sends ``READY=1`` once its socket serves, ``STOPPING=1`` when it begins to stop and,
when the unit sets ``WatchdogSec=`` (``$WATCHDOG_USEC``, for this pid per ``$WATCHDOG_PID``),
``WATCHDOG=1`` at half that interval from the event loop, so a loop that hangs is restarted.
Without ``$NOTIFY_SOCKET`` (not under systemd) every call does nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger("enclaved")


class Notifier:
    def __init__(self, environ: Mapping[str, str] = os.environ) -> None:
        name = environ.get("NOTIFY_SOCKET", "")
        # "@name" is Linux's abstract namespace: a leading NUL byte instead of a file
        self.address: str | None = "\0" + name[1:] if name.startswith("@") else name if name.startswith("/") else None
        self.watchdog_seconds = _watchdog(environ)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, state: str) -> bool:
        """Send one state (``READY=1``, ``STOPPING=1``, ``WATCHDOG=1``); False if it could
        not be sent (a debug line: systemd going away must not stop the daemon)."""
        if self.address is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(state.encode(), self.address)
            return True
        except OSError as exc:
            log.debug("sd_notify %s not sent: %s", state.split("=", 1)[0], exc)
            return False

    async def keep_alive(self) -> None:
        """Send ``WATCHDOG=1`` at half the watchdog interval until cancelled (only when the
        unit asks for a watchdog)."""
        if self.watchdog_seconds is None or self.address is None:
            return
        while True:
            self.notify("WATCHDOG=1")
            await asyncio.sleep(self.watchdog_seconds / 2)


def _watchdog(environ: Mapping[str, str]) -> float | None:
    """The watchdog interval in seconds, if systemd set one for this process."""
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    pid = environ.get("WATCHDOG_PID", "")
    if usec <= 0 or (pid and pid != str(os.getpid())):
        return None
    return usec / 1e6
