"""Text for the terminal: model output made safe, sizes made readable, durations read."""

from __future__ import annotations

import re

from enclave_contract import durations

# C0/C1 control characters (ESC included) but newline and tab: model output must not be able
# to drive the terminal.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def safe_text(text: str) -> str:
    return _CONTROL.sub("\N{REPLACEMENT CHARACTER}", text)


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def plural(n: int, word: str) -> str:
    """``1 turn``, ``2 turns``, ``0 turns``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def kept_states(entries: int, size: int, budget: int) -> str:
    """The state cache in a few characters: ``3 · 48.0 MiB/256.0 MiB``; ``-`` when it is off."""
    return f"{entries} · {human_bytes(size)}/{human_bytes(budget)}" if budget else "-"


def seconds(text: str) -> float:
    """A duration a person writes (``300s``, ``5m``, ``1.5h``, a bare number is seconds);
    ValueError when it is not one."""
    value = durations.seconds(text)
    if value is None:
        raise ValueError(f"{text.strip()!r} is not a duration; {durations.HOW}")
    return value
