"""Pane switches timed from the bytes the workbench writes to its terminal.

A pane is a box with round corners; the selected one's border has the accent colour. Textual
writes each changed stretch of a line as a cursor move (``ESC [ row ; col H``) followed by
segments, each with its whole style (``ESC [ ... m text ESC [ 0 m``), so the top-left corner
of a pane (``╭``) can be found at any point of the stream, with the style it was drawn in,
without replaying the screen from the start: the first cursor move resynchronises.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Protocol

CORNER = "╭"
_CORNER = CORNER.encode()
# a control sequence (CSI), another escape, a run of text, or a line break
_TOKEN = re.compile(rb"\x1b\[([0-?]*)[ -/]*([@-~])|\x1b[^\[]|[^\x1b\n]+|\n")


@dataclass(frozen=True)
class CornerDraw:
    end: int  # offset just after the corner's bytes
    row: int  # 1-based, as the cursor move says
    column: int
    style: bytes  # the parameters of the last SGR before it (b"" after a reset)


def corner_draws(data: bytes, base: int = 0) -> list[CornerDraw]:
    """Every pane corner drawn in ``data`` (which begins at offset ``base`` of the stream)
    after its first cursor move; text before that has no known position."""
    draws: list[CornerDraw] = []
    row = column = 0  # 0: no cursor move seen yet
    style = b""
    for m in _TOKEN.finditer(data):
        token = m.group()
        if token[:2] == b"\x1b[":
            params, final = m.group(1), m.group(2)
            if final == b"H":
                parts = params.split(b";")
                row = int(parts[0] or 1)
                column = int(parts[1] or 1) if len(parts) > 1 else 1
            elif final == b"m":
                style = b"" if params in (b"", b"0") else params
        elif token == b"\n":
            row, column = (row + 1, 1) if row else (0, 0)
        elif token[0] != 0x1B:
            text = token.decode(errors="replace")
            if row and _CORNER in token:
                for i, char in enumerate(text):
                    if char == CORNER:
                        end = m.start() + len(text[: i + 1].encode())
                        draws.append(CornerDraw(base + end, row, column + i, style))
            if row:
                column += len(text)
    return draws


def pane_corners(draws: list[CornerDraw], panes: int) -> list[tuple[int, int]]:
    """Where the panes' corners are in the latest layout, in reading order (pane 1 first):
    the last ``panes`` different places a corner was drawn."""
    places: list[tuple[int, int]] = []
    for d in reversed(draws):
        if (d.row, d.column) not in places:
            places.append((d.row, d.column))
            if len(places) == panes:
                break
    if len(places) < panes:
        raise RuntimeError(f"found {len(places)} pane corners on screen, not {panes}")
    return sorted(places)


def last_style(draws: list[CornerDraw], place: tuple[int, int]) -> bytes:
    """The style the corner at ``place`` was last drawn in."""
    for d in reversed(draws):
        if (d.row, d.column) == place:
            return d.style
    raise RuntimeError(f"no corner drawn at row {place[0]}, column {place[1]}")


ALT_RIGHT = b"\x1b[1;3C"


def alt_digit(pane: int) -> bytes:
    """alt+N as tmux and xterm send it (ESC N), which the workbench reads as alt+N."""
    return b"\x1b" + str(pane + 1).encode()


def switch_keys(count: int, panes: int) -> list[tuple[str, bytes, int]]:
    """``count`` pane switches from pane 1 (index 0): alt+right and alt+N by turns, each to
    another pane; (key name, bytes, index of the pane it selects)."""
    keys: list[tuple[str, bytes, int]] = []
    at = 0
    for i in range(count):
        if i % 2 == 0:
            at = (at + 1) % panes
            keys.append(("alt+right", ALT_RIGHT, at))
        else:
            at = (at + 2) % panes if panes > 2 else (at + 1) % panes
            keys.append((f"alt+{at + 1}", alt_digit(at), at))
    return keys


def drawn_selected(data: bytes, base: int, place: tuple[int, int], selected: bytes) -> int | None:
    """The offset just after the first time the corner at ``place`` is drawn in the selected
    style in ``data``; None if it is not."""
    if _CORNER not in data:
        return None
    return next((d.end for d in corner_draws(data, base) if (d.row, d.column) == place and d.style == selected), None)


class Terminal(Protocol):
    buf: bytearray

    def offset(self) -> int: ...
    def write(self, data: bytes) -> None: ...
    def wait_until(self, find: Callable[[bytes, int], int | None], start: int, timeout: float) -> float | None: ...


def measure_switches(term: Terminal, panes: int, count: int, spacing: float, timeout: float) -> tuple[list[float], int]:
    """Switch panes ``count`` times, ``spacing`` seconds apart (or as soon as the last one is
    shown): ms from each key to the frame that draws the new pane selected, and how many were
    not shown within ``timeout`` seconds (counted as that long)."""
    draws = corner_draws(bytes(term.buf))
    places = pane_corners(draws, panes)
    selected = last_style(draws, places[0])  # pane 1 is selected until the first switch
    if any(last_style(draws, place) == selected for place in places[1:]):
        raise RuntimeError("the panes' corners are all drawn alike: no way to tell the selected one")
    times: list[float] = []
    lost = 0
    t0 = time.monotonic()
    for i, (_name, key, pane) in enumerate(switch_keys(count, panes)):
        time.sleep(max(0.0, t0 + i * spacing - time.monotonic()))
        start = term.offset()
        sent = time.monotonic()
        term.write(key)
        seen = term.wait_until(partial(drawn_selected, place=places[pane], selected=selected), start, timeout)
        if seen is None:
            lost += 1
        times.append(((seen if seen is not None else sent + timeout) - sent) * 1000)
    return times, lost
