"""Limits that the daemon enforces and that clients must respect to be understood."""

from __future__ import annotations

MAX_SOCKET_PATH = 107  # bytes: sun_path is 108 bytes on Linux, with the terminating NUL
