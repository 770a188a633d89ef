"""The scripted stand-in daemon (for TUI snapshots and the TUI benchmark) answers like enclaved."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from enclave_contract.v1 import agents_pb2, agents_pb2_grpc, chat_pb2, chat_pb2_grpc
from tests.tui.scripted_daemon import WORDS, ScriptedDaemon

pytestmark = pytest.mark.timeout(30)

EVENTS = [
    chat_pb2.ChatEvent(agent="a1", turn_id="t1", started=chat_pb2.TurnStarted(model="m", user_message="hi")),
    chat_pb2.ChatEvent(agent="a1", turn_id="t1", phase=chat_pb2.PhaseChanged(phase=chat_pb2.TURN_PHASE_GENERATING)),
    chat_pb2.ChatEvent(agent="a1", turn_id="t1", delta=chat_pb2.TokenDelta(text="Hello", tokens=1)),
    chat_pb2.ChatEvent(agent="a1", turn_id="t1", finished=chat_pb2.TurnFinished(finish_reason=chat_pb2.FINISH_REASON_END_OF_TURN)),
]


@pytest.fixture
def sock() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="scr-", dir="/tmp"))
    yield d / "s.sock"
    shutil.rmtree(d, ignore_errors=True)


async def test_scripted_mode_lists_agents_and_watch_replays_the_events_in_order(sock: Path) -> None:
    agents = [agents_pb2.Agent(name="a1", model="m"), agents_pb2.Agent(name="a2", model="m")]
    transcript = [agents_pb2.TranscriptMessage(role=agents_pb2.ROLE_USER, content="earlier", turn_id="t0")]
    async with ScriptedDaemon(sock, agents=agents, transcripts={"a1": transcript}, events=EVENTS):
        async with grpc.aio.insecure_channel(f"unix:{sock}") as ch:
            stub = agents_pb2_grpc.AgentsStub(ch)
            listed = (await stub.ListAgents(agents_pb2.ListAgentsRequest(), timeout=5)).agents
            assert [a.name for a in listed] == ["a1", "a2"]
            got = await stub.GetTranscript(agents_pb2.GetTranscriptRequest(name="a1"), timeout=5)
            assert list(got.messages) == transcript
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.GetTranscript(agents_pb2.GetTranscriptRequest(name="nobody"), timeout=5)
            assert err.value.code() == grpc.StatusCode.NOT_FOUND

            call = chat_pb2_grpc.ChatStub(ch).Watch(chat_pb2.WatchRequest())
            assert [await call.read() for _ in EVENTS] == EVENTS
            with pytest.raises(asyncio.TimeoutError):  # then open and quiet
                await asyncio.wait_for(call.read(), 0.3)
            call.cancel()


async def test_synthetic_mode_streams_turns_of_lowercase_words(sock: Path) -> None:
    async with ScriptedDaemon(sock, agents=2, rate=2000, turn_tokens=50, mark_every=0.05) as d:
        async with grpc.aio.insecure_channel(f"unix:{sock}") as ch:
            call = chat_pb2_grpc.ChatStub(ch).Watch(chat_pb2.WatchRequest())
            finished, tokens, marks = 0, 0, []
            async for ev in call:
                if ev.HasField("delta"):
                    words = ev.delta.text.split(" ")
                    assert words[-1] == "" and all(w in WORDS or w.startswith("zq") for w in words[:-1])
                    marks += [w for w in words if w.startswith("zq")]
                    assert len(words) - 1 == ev.delta.tokens
                    tokens += ev.delta.tokens
                finished += ev.HasField("finished")
                if finished == 4:
                    break
            call.cancel()
            assert tokens >= 4 * 50 and d.stats()["tokens"] >= tokens
            assert marks and marks == [m for m, _, _ in d.marks[: len(marks)]] and len(set(marks)) == len(marks)
