"""Turning a token stream into text: incremental UTF-8 decoding and stop strings."""

from __future__ import annotations

import codecs


class StopFilter:
    """Holds back text that might be the start of a stop string.

    ``feed`` returns the text that is safe to show and whether a stop string was hit; the stop
    string itself and anything after it are never shown.
    """

    def __init__(self, stops: list[str]) -> None:
        self._stops = [s for s in stops if s]
        self._held = ""

    def feed(self, text: str) -> tuple[str, bool]:
        if not self._stops:
            return text, False
        buf = self._held + text
        hits = [i for i in (buf.find(s) for s in self._stops) if i >= 0]
        if hits:
            self._held = ""
            return buf[: min(hits)], True
        keep = 0
        for stop in self._stops:
            for n in range(min(len(stop) - 1, len(buf)), keep, -1):
                if buf.endswith(stop[:n]):
                    keep = n
                    break
        self._held = buf[len(buf) - keep :]
        return buf[: len(buf) - keep], False

    def flush(self) -> str:
        held, self._held = self._held, ""
        return held


class TextStream:
    """Token bytes in, displayable text out; never splits a UTF-8 character."""

    def __init__(self, stops: list[str]) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stop = StopFilter(stops)

    def feed(self, piece: bytes) -> tuple[str, bool]:
        return self._stop.feed(self._utf8.decode(piece))

    def finish(self) -> str:
        """What is still held back once generation ended without a stop string."""
        tail, _ = self._stop.feed(self._utf8.decode(b"", final=True))
        return tail + self._stop.flush()
