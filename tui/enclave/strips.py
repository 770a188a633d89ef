"""Rendered lines without per-line caches, so that the garbage collector has less to walk.

Textual draws every line of the screen as a ``Strip``, and each ``Strip`` makes seven
``FIFOCache`` objects of its own to memoise what is derived from it (crops, divisions at the
compositor's cuts, restyles). With four panes streaming, lines are drawn, cropped and divided
on every tick, and the lines a widget keeps carry the strips derived from them: in a minute
at 2,000 tok/s the objects Python's collector tracks grow to ~280,000, most of them these
caches and the strips they hold, and each full collection, every second or two, then stops
the app for over 100 ms, which is what a key press waits for (``bench/bench_tui.py``).

``light_strips()`` has every new ``Strip`` share one cache that keeps nothing. A ``Strip``
never changes, so its caches only save work: what is drawn stays the same, and what a
frame costs stays about the same (the compositor crops and divides only the lines that
changed), while the tracked objects stay under ~100,000 and full collections take a third
as long. If Textual's ``Strip`` has other fields than the ones this was written for, it is
left alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.segment import Segment
from textual.cache import FIFOCache
from textual.strip import Strip

_CACHES = (
    "_divide_cache",
    "_crop_cache",
    "_style_cache",
    "_filter_cache",
    "_line_length_cache",
    "_crop_extend_cache",
    "_offsets_cache",
)
_FIELDS = frozenset({"_segments", "_cell_length", "_render_cache", "_link_ids", "_cell_count", *_CACHES})


class _KeepNothing(FIFOCache[Any, Any]):
    """A cache that never holds a value: every lookup misses."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(0)

    def set(self, key: Any, value: Any) -> None:
        pass

    __setitem__ = set


_NOTHING = _KeepNothing()


def _init(self: Strip, segments: Iterable[Segment], cell_length: int | None = None) -> None:
    """``Strip.__init__`` with the one shared cache that keeps nothing."""
    self._segments = list(segments)
    self._cell_length = cell_length
    for name in _CACHES:
        setattr(self, name, _NOTHING)
    self._render_cache = None
    self._link_ids = None
    self._cell_count = None


def light_strips() -> bool:
    """New strips share the cache that keeps nothing (idempotent); False if Textual's
    ``Strip`` is not the one this knows, and left as it is."""
    if Strip.__init__ is _init:
        return True
    if frozenset(Strip.__slots__) != _FIELDS:
        return False
    Strip.__init__ = _init  # type: ignore[method-assign]
    return True
