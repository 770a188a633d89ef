"""Strips without per-line caches draw the same lines, and keep nothing aside."""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

from enclave.strips import light_strips


def test_light_strips_apply_to_the_textual_in_use_and_keep_nothing() -> None:
    assert light_strips(), "Textual's Strip changed: check enclave/strips.py against it"
    assert light_strips(), "applying twice is harmless"
    bold = Style(bold=True)
    strip = Strip([Segment("hello ", bold), Segment("world")])
    for _ in range(2):  # the second time would come from a cache, if there were one
        assert strip.crop(2, 8).text == "llo wo"
        assert [s.text for s in strip.divide([3, 7, 11])] == ["hel", "lo w", "orld"]
        assert strip.crop_extend(0, 14, None).cell_length == 14
        assert strip.apply_style(bold).text == "hello world"
    caches = [strip._crop_cache, strip._divide_cache, strip._style_cache, strip._crop_extend_cache]
    assert all(len(cache) == 0 for cache in caches)
    assert len({id(cache) for cache in caches}) == 1, "one shared cache, not seven per line"
