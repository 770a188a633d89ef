"""A remote stream's text, sent on as the local scheduler sends a sequence's: the first piece
at once, then at most every ``COALESCE_SECONDS``, so an engine that streams a chunk per token
costs every client a message per 33 ms, not one per token."""

from __future__ import annotations

import asyncio
import time

from enclaved.engine.requests import COALESCE_SECONDS, Sink, Text


class TextBatcher:
    """Runs on the event loop. Text held back goes out when the next piece comes late enough,
    when a timer fires (an engine that pauses mid-reply holds nothing back for longer than
    ``COALESCE_SECONDS``), or at ``flush``, which the stream calls before it ends either way."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.text = ""
        self.tokens = 0
        self.last = -COALESCE_SECONDS
        self.timer: asyncio.TimerHandle | None = None

    def add(self, text: str, tokens: int) -> None:
        self.text += text
        self.tokens += tokens
        wait = self.last + COALESCE_SECONDS - time.monotonic()
        if wait <= 0:
            self.flush()
        elif self.timer is None:
            self.timer = asyncio.get_running_loop().call_later(wait, self.flush)

    def flush(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.text:
            text, tokens, self.text, self.tokens = self.text, self.tokens, "", 0
            self.last = time.monotonic()
            self.sink(Text(text, tokens))
