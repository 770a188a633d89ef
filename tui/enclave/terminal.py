"""What a terminal sends, as the workbench should read it, and copies that reach its clipboard.

Textual maps ESC followed by a digit to the characters WezTerm on macOS types for Option and a
digit (``¡ ™ £ …``). Every other terminal, tmux and xterm among them, sends ESC+digit for
alt+digit, so the workbench would type ``£`` where the person asked for pane 3. Those entries
are replaced by keys named ``alt+DIGIT``: the sequence is then a key the moment it arrives.
(Dropping them would leave Textual's rule that ESC and a key is alt+key, which applies only
once ESC's delay runs out: ESC+digit followed at once by more input, such as a paste, would
type ``^2``.)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from enum import Enum
from typing import cast

from textual._ansi_sequences import ANSI_SEQUENCES_KEYS

AltDigit = Enum("AltDigit", {f"ALT_{d}": f"alt+{d}" for d in "0123456789"})  # type: ignore[misc]
"""Keys as Textual's table holds them: members whose value is the key's name."""


def read_alt_digits() -> None:
    """ESC+digit is alt+digit from now on (idempotent)."""
    table = cast(dict[str, object], ANSI_SEQUENCES_KEYS)  # typed a Mapping; it is the dict Textual reads
    for key in AltDigit:
        table[f"\x1b{key.value[-1]}"] = (key,)


SET_CLIPBOARD_ON = "add `set -g set-clipboard on` to ~/.tmux.conf"


class TmuxUnreachable(Exception):
    """The ``tmux`` command could not be run, or did not answer."""


async def tmux_copy(text: str) -> tuple[str, bool] | None:
    """Inside tmux, what a copy needs besides OSC 52, done, and a line for the person with
    whether it reached the clipboard (a line that goes after "copied …": "through …" when it
    did, "but …" when it did not or may not have); None outside tmux or when tmux passes
    OSC 52 on (``set-clipboard on``).

    tmux's default ``set-clipboard external`` drops an application's OSC 52, so the text
    goes in through ``tmux load-buffer -w``, which tmux forwards to the terminal's clipboard
    itself; with ``off`` only tmux's paste buffer gets it. When the ``tmux`` command cannot
    be run at all, nothing is known of where the text went, and the line says so.
    """
    if not os.environ.get("TMUX"):
        return None
    try:
        mode = await _tmux(["show-options", "-gv", "set-clipboard"])
        if mode is not None and mode.strip() == "on":
            return None
        taken = await _tmux(["load-buffer", "-w", "-"], text)
    except TmuxUnreachable as exc:
        return f"but it could not be handed to tmux ({exc}), so it is on the clipboard only if tmux passes it on: {SET_CLIPBOARD_ON}", False
    if taken is None:
        return f"but tmux did not take the text; {SET_CLIPBOARD_ON}", False
    if mode is not None and mode.strip() == "off":
        return f"but only into tmux's paste buffer (prefix ] pastes it), not the clipboard; {SET_CLIPBOARD_ON}", False
    return "through tmux's paste buffer", True


async def _tmux(args: list[str], stdin: str | None = None) -> str | None:
    """tmux's output, or None when it ran and failed; TmuxUnreachable when it could not be run
    or took over 2 s."""
    try:
        process = await asyncio.create_subprocess_exec(
            "tmux",
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
    except OSError as exc:
        raise TmuxUnreachable(f"the tmux command could not be run: {exc.strerror or exc}") from None
    try:
        out, _ = await asyncio.wait_for(process.communicate(stdin.encode() if stdin is not None else b""), 2)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise TmuxUnreachable("the tmux command did not answer in 2 s") from None
    return out.decode(errors="replace") if process.returncode == 0 else None
