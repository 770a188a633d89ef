"""What a terminal sends, as the workbench should read it.

Textual maps ESC followed by a digit to the characters WezTerm on macOS types for Option and a
digit (``¡ ™ £ …``). Every other terminal, tmux and xterm among them, sends ESC+digit for
alt+digit, so the workbench would type ``£`` where the person asked for pane 3. Dropping those
entries lets Textual's own rule apply: ESC and a key is alt+key.
"""

from __future__ import annotations

from typing import cast

from textual._ansi_sequences import ANSI_SEQUENCES_KEYS

ALT_DIGITS = tuple(f"\x1b{d}" for d in "0123456789")


def read_alt_digits() -> None:
    """ESC+digit is alt+digit from now on (idempotent)."""
    table = cast(dict[str, object], ANSI_SEQUENCES_KEYS)  # typed a Mapping; it is the dict Textual reads
    for sequence in ALT_DIGITS:
        table.pop(sequence, None)
