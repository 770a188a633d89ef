"""The one error the workbench shows for the daemon: a failed call, as one line."""

from __future__ import annotations


class DaemonError(Exception):
    """A failed call, as one line for the screen: the problem and the fix. ``code``: the gRPC
    status code's name, when the daemon answered with one."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code
