"""Latency percentiles over recent turns (nearest rank), and listeners that cannot fail a turn."""

from __future__ import annotations

from enclaved.domain.telemetry import Finished, Percentiles, Telemetry, percentiles
from enclaved.engine import Finish, TurnResult


def test_nearest_rank_percentiles() -> None:
    assert percentiles([]) is None
    assert percentiles([2.0]) == Percentiles(2.0, 2.0, 2.0)
    values = [float(v) for v in range(100, 0, -1)]  # 1..100, unsorted
    assert percentiles(values) == Percentiles(50.0, 95.0, 99.0)
    assert percentiles([1.0, 2.0, 3.0, 10.0]) == Percentiles(2.0, 10.0, 10.0)


def test_turns_with_tokens_count_and_a_failing_listener_is_contained() -> None:
    t = Telemetry(recent=3)
    seen: list[Finished] = []
    t.listen(lambda done: 1 / 0)  # a metrics bug
    t.listen(seen.append)
    t.finished("m", TurnResult(Finish.CANCELLED), 0.5)  # no token: no latency
    assert t.turn("m") is None and len(seen) == 1
    for seconds in (1.0, 2.0, 3.0, 4.0):
        t.finished("m", TurnResult(Finish.END_OF_TURN, completion_tokens=2, time_to_first_token_ms=seconds * 100), seconds)
    assert t.turn("m") == Percentiles(3.0, 4.0, 4.0), "only the most recent turns"
    assert t.first_token("m") == Percentiles(0.3, 0.4, 0.4)
    assert t.turn("other") is None and len(seen) == 5
