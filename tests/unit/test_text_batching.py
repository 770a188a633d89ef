"""A remote stream's text reaches the sink as the local scheduler's does: the first piece at
once, then at most every COALESCE_SECONDS, nothing held back past a pause or the end."""

from __future__ import annotations

import asyncio

import pytest

from enclaved.engine.remote.batching import TextBatcher
from enclaved.engine.requests import COALESCE_SECONDS, EngineEvent, Text

pytestmark = pytest.mark.unit


async def test_pieces_are_joined_and_nothing_is_held_back() -> None:
    got: list[EngineEvent] = []
    batcher = TextBatcher(got.append)
    batcher.add("Hel", 1)
    assert got == [Text("Hel", 1)], "the first piece goes at once"
    batcher.add("lo", 1)
    batcher.add(",", 1)
    assert len(got) == 1, "pieces that come sooner are held back"
    await asyncio.sleep(COALESCE_SECONDS * 3)
    assert got == [Text("Hel", 1), Text("lo,", 2)], "a pause sends what was held, joined, with its token count"
    batcher.add(" world", 1)
    assert got[-1] == Text(" world", 1), "a piece after a pause goes at once"
    batcher.add("!", 1)
    batcher.flush()
    assert got[-1] == Text("!", 1) and batcher.timer is None
    batcher.flush()
    assert len(got) == 4, "an empty flush sends nothing"
