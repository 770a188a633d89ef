"""The one error the workbench shows for the daemon: a failed call, as one line."""

from __future__ import annotations


class DaemonError(Exception):
    """A failed call, as one line for the screen: the problem and the fix."""
