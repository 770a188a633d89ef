"""Stop strings and UTF-8 handling of the token-to-text stream."""

from enclaved.engine.textstream import StopFilter, TextStream


def feed_all(f: StopFilter, parts: list[str]) -> tuple[str, bool]:
    out = []
    for p in parts:
        text, hit = f.feed(p)
        out.append(text)
        if hit:
            return "".join(out), True
    return "".join(out) + f.flush(), False


def test_stop_string_split_across_tokens() -> None:
    assert feed_all(StopFilter(["</end>"]), ["hello </", "en", "d> never"]) == ("hello ", True)


def test_prefix_of_stop_is_held_then_released() -> None:
    f = StopFilter(["STOP"])
    assert f.feed("abc ST") == ("abc ", False)
    assert f.feed("ART") == ("START", False)


def test_earliest_of_several_stops_wins() -> None:
    assert feed_all(StopFilter(["zz", "b"]), ["a", "bzz"]) == ("a", True)


def test_no_stops_passes_through() -> None:
    assert StopFilter([]).feed("anything") == ("anything", False)


def test_multibyte_character_split_over_tokens() -> None:
    s = TextStream([])
    data = "é日本".encode()
    out = "".join(s.feed(data[i : i + 1])[0] for i in range(len(data)))
    assert out + s.finish() == "é日本"


def test_invalid_utf8_is_replaced_not_raised() -> None:
    s = TextStream([])
    text, _ = s.feed(b"ok \xff\xfe end")
    assert text == "ok \ufffd\ufffd end"


def test_dangling_partial_character_is_flushed_at_finish() -> None:
    s = TextStream([])
    assert s.feed(b"a\xe6\x97")[0] == "a"
    assert s.finish() == "\ufffd"
