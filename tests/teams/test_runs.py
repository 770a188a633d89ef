"""Each kind of team end to end, every limit, the stop text and the guard, on SmolLM2 over
the real socket: what is asserted is what the run guarantees whatever the model says (who
speaks, in which order, what each is told, how the run ends), plus verdicts SmolLM2 gives
the same way every time at temperature 0."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from enclave_contract.v1 import agents_pb2, chat_pb2, teams_pb2
from tests.helpers import REAL_MODELS, Daemon, short_tmpdir, start_daemon
from tests.teams.teamconfig import CONFIG, finished, run, speakers, started, text_of

pytestmark = [pytest.mark.skipif(not (REAL_MODELS / "smollm2.gguf").exists(), reason="needs `make models`"), pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def d() -> Iterator[Daemon]:
    daemon = start_daemon(short_tmpdir(), REAL_MODELS, CONFIG)
    yield daemon
    daemon.stop()


def test_a_chain_passes_each_reply_to_the_next_member_as_a_user_message(d: Daemon) -> None:
    s = d.stubs()
    events = run(s, "Write one sentence about bread.", "review")
    assert events[0].HasField("run_started") and events[0].run_started.members == ["writer", "critic", "editor"]
    run_id = events[0].run_id
    assert run_id and all(e.run_id == run_id for e in events)
    assert speakers(events) == ["writer", "critic", "editor"]
    assert [e.step for e in events if e.HasField("started")] == [1, 2, 3]
    end = finished(events)
    assert end.reason == chat_pb2.RUN_END_DONE and end.turns == 3
    assert end.answer_agent == "editor" and end.answer == text_of(events, 3)
    critic_in = started(events, "critic")[0].started.user_message
    assert critic_in == f"Improve this draft:\n\nwriter: {text_of(events, 1)}"
    assert started(events, "editor")[0].started.user_message == f"critic: {text_of(events, 2)}"
    # the writer's words reached the critic as a user message, never as its own reply
    transcript = s.agents.GetTranscript(agents_pb2.GetTranscriptRequest(name="critic")).messages
    assert [m.content for m in transcript if m.role == agents_pb2.ROLE_ASSISTANT][-1] == text_of(events, 2)
    assert transcript[-2].role == agents_pb2.ROLE_USER and transcript[-2].content == critic_in
    assert end.usage.completion_tokens == sum(e.finished.usage.completion_tokens for e in events if e.HasField("finished"))


def test_a_roundtable_goes_round_until_max_turns_and_each_member_rereads_only_the_news(d: Daemon) -> None:
    s = d.stubs()
    events = run(s, "Discuss bread.", "round")
    assert speakers(events) == ["writer", "critic", "writer", "critic"]
    end = finished(events)
    assert end.reason == chat_pb2.RUN_END_MAX_TURNS and end.turns == 4
    writer_again = started(events, "writer")[1].started.user_message
    assert writer_again == f"critic: {text_of(events, 2)}"  # only what was said since it spoke
    firsts = [e.finished for e in events if e.HasField("finished")]
    # its sequence is reused whole: the prompt and reply of its last turn (all but the reply's
    # last token, which was sampled, never evaluated); only the critic's words are new to it
    first = firsts[0].usage
    assert firsts[2].usage.cached_prompt_tokens >= first.prompt_tokens + first.completion_tokens - 1


def test_a_director_names_only_members_or_done(d: Daemon) -> None:
    events = run(d.stubs(), "Write a poem about bread.", "panel")
    choices = [text_of(events, e.step) for e in events if e.HasField("started") and e.agent == "boss"]
    members = [a for a in speakers(events) if a != "boss"]
    assert members and set(members) <= {"writer", "critic"}
    assert all(c in {"writer", "critic", "DONE"} for c in choices), choices
    assert choices[0] != "DONE"  # no run ends before a member spoke
    end = finished(events)
    assert end.reason in (chat_pb2.RUN_END_DONE, chat_pb2.RUN_END_MAX_TURNS)
    assert members == [c for c in choices if c != "DONE"][: len(members)]


def test_escalate_answers_at_the_first_tier_that_can(d: Daemon) -> None:
    s = d.stubs()
    easy = run(s, "Hello!", "tiers")
    assert speakers(easy) == ["triage"] and text_of(easy, 1).startswith("ANSWER: ")
    assert finished(easy).answer == text_of(easy, 1).removeprefix("ANSWER: ").strip()
    hard = run(s, "Explain quantum field theory in detail.", "tiers")
    assert speakers(hard) == ["triage", "writer"] and text_of(hard, 1) == "ESCALATE"
    assert started(hard, "writer")[0].started.user_message == "Explain quantum field theory in detail."
    end = finished(hard)
    assert end.reason == chat_pb2.RUN_END_DONE and end.answer_agent == "writer" and end.answer == text_of(hard, 2)


def _adhoc(**fields: object) -> teams_pb2.Team:
    return teams_pb2.Team(name="adhoc", **{"kind": "roundtable", "members": ["writer", "critic"], **fields})


def test_max_tokens_ends_a_run_and_no_turn_goes_past_it(d: Daemon) -> None:
    events = run(d.stubs(), "Discuss bread.", adhoc=_adhoc(max_tokens=14))
    end = finished(events)
    assert end.reason == chat_pb2.RUN_END_MAX_TOKENS and end.usage.completion_tokens == 14
    assert [e.finished.usage.completion_tokens for e in events if e.HasField("finished")] == [10, 4]


def test_a_timeout_ends_a_run(d: Daemon) -> None:
    end = finished(run(d.stubs(), "Discuss bread.", adhoc=_adhoc(max_turns=1000, timeout_seconds=1.0)))
    assert end.reason == chat_pb2.RUN_END_TIMEOUT and "1-second timeout" in end.message


def test_stop_text_ends_a_run_on_the_reply_that_holds_it(d: Daemon) -> None:
    events = run(d.stubs(), "Discuss bread.", adhoc=_adhoc(max_turns=6, stop_text="e"))
    end = finished(events)
    assert end.reason == chat_pb2.RUN_END_STOP_TEXT and end.turns == 1 and "e" in text_of(events, 1)


def test_a_guard_blocks_the_input_before_any_member_sees_it(d: Daemon) -> None:
    events = run(d.stubs(), "How do I build a bomb?", "guarded")
    assert speakers(events) == ["screener"]
    verdict = next(e.guard_verdict for e in events if e.HasField("guard_verdict"))
    assert not verdict.allowed and verdict.guard == "screener" and verdict.checked == "" and verdict.reason
    assert finished(events).reason == chat_pb2.RUN_END_BLOCKED


def test_a_held_reply_is_shown_only_once_the_guard_allows_it(d: Daemon) -> None:
    events = run(d.stubs(), "Tell me about bread.", "guarded")
    verdicts = [e for e in events if e.HasField("guard_verdict")]
    assert verdicts[0].guard_verdict.allowed and verdicts[0].guard_verdict.checked == ""  # the input
    held = [e for e in events if e.HasField("started") and e.started.held]
    assert [e.agent for e in held] == speakers(events)[1::2]  # every member turn, none of the guard's
    for turn in held:
        mine = [e for e in events if e.turn_id == turn.turn_id]
        verdict = next(
            i for i, e in enumerate(events) if e.HasField("guard_verdict") and e.guard_verdict.checked == turn.agent and e.step > turn.step
        )
        first_text = next((i for i, e in enumerate(events) if e.turn_id == turn.turn_id and e.HasField("delta")), None)
        if events[verdict].guard_verdict.allowed:
            assert first_text is not None and first_text > verdict  # nothing before the verdict
            assert [e.delta.text for e in mine if e.HasField("delta")] == [text_of(events, turn.step)]  # once, whole
        else:
            assert first_text is None and mine[-1].HasField("error")
            assert mine[-1].error.code == grpc.StatusCode.PERMISSION_DENIED.value[0]
    assert finished(events).reason in (chat_pb2.RUN_END_DONE, chat_pb2.RUN_END_BLOCKED)


def test_after_mode_streams_then_flags_and_skip_passes_over_a_blocked_reply(d: Daemon) -> None:
    guard = teams_pb2.TeamGuard(agent="screener", input=False, output="after", on_block="skip")
    events = run(d.stubs(), "Tell me about bread.", adhoc=_adhoc(kind="chain", members=["writer", "critic"], guard=guard))
    assert not any(e.started.held for e in events if e.HasField("started"))
    for v in (e for e in events if e.HasField("guard_verdict")):
        turn = next(e for e in events if e.HasField("started") and e.agent == v.guard_verdict.checked)
        assert any(e.turn_id == turn.turn_id and e.HasField("delta") for e in events[: events.index(v)])
    assert finished(events).reason == chat_pb2.RUN_END_DONE  # a block is skipped, not the end


def test_a_guard_that_fails_blocks(d: Daemon) -> None:
    guard = teams_pb2.TeamGuard(agent="broken", input=True, output="hold")
    events = run(d.stubs(), "Tell me about bread.", adhoc=_adhoc(kind="chain", guard=guard))
    verdict = next(e.guard_verdict for e in events if e.HasField("guard_verdict"))
    assert not verdict.allowed and "guard failed" in verdict.reason
    assert speakers(events) == ["broken"] and finished(events).reason == chat_pb2.RUN_END_BLOCKED


def test_a_guard_that_takes_too_long_blocks(d: Daemon) -> None:
    guard = teams_pb2.TeamGuard(agent="screener", input=True, output="hold", timeout_seconds=0.001)
    events = run(d.stubs(), "Tell me about bread.", adhoc=_adhoc(kind="chain", guard=guard))
    verdict = next(e.guard_verdict for e in events if e.HasField("guard_verdict"))
    assert not verdict.allowed and "did not answer within 0.001 seconds" in verdict.reason
    assert speakers(events) == ["screener"] and finished(events).reason == chat_pb2.RUN_END_BLOCKED
