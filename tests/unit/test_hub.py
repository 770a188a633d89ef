"""The event hub's replay for a watcher that joins a turn in progress."""

from __future__ import annotations

from enclaved.domain.hub import Delta, EventHub, Phase, PhaseChanged, Started, Truncated, TurnEvent


def test_a_late_watcher_learns_that_the_turns_history_was_trimmed() -> None:
    """A client that reattaches mid-turn shows the same "oldest messages left out" marker as
    one that watched the turn from its start."""
    hub = EventHub()
    for body in (Started("tiny", "q"), Truncated(2, 180), PhaseChanged(Phase.GENERATING), Delta("so far", 2)):
        hub.publish(TurnEvent("a1", "t1", body))
    late = hub.subscribe(replay_live=True)
    replayed = []
    while not late.queue.empty():
        event = late.queue.get_nowait()
        assert event is not None
        replayed.append(event.body)
    assert replayed == [Started("tiny", "q"), Truncated(2, 180), PhaseChanged(Phase.GENERATING), Delta("so far", 2)]
