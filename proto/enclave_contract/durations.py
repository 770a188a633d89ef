"""Durations as a person writes them, read the same by the client (``enclave team put
--timeout``, the team editor) and the daemon (team timeouts in the config file)."""

from __future__ import annotations

import re

_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*")
_SCALE = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
HOW = 'write it like "300s" or "5m"'


def seconds(text: str) -> float | None:
    """``300s``, ``5m``, ``1.5h``, ``250ms`` or a bare number (seconds) in seconds; None when
    ``text`` is not a duration."""
    m = _DURATION.fullmatch(text)
    return None if m is None else float(m.group(1)) * _SCALE[m.group(2) or "s"]
