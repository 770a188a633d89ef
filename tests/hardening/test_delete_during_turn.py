"""DeleteAgent while the agent generates: its turn stops first, nothing of it reaches the
store after the delete, and a new agent of the same name starts empty, also after a restart."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

import grpc
import pytest

from enclave_contract.v1 import agents_pb2, chat_pb2
from tests.hardening.test_outcomes import CONFIG
from tests.helpers import Daemon, enclave

pytestmark = pytest.mark.timeout(120)


def chat_and_agent_records(d: Daemon) -> list[dict[str, object]]:
    r = enclave(d, "audit", "export", "--format", "jsonl")
    return [json.loads(line) for line in r.stdout.splitlines()]


def test_deleting_a_generating_agent_leaves_nothing_for_its_successor(daemon_factory: Callable[..., Daemon]) -> None:
    d = daemon_factory(CONFIG)
    stubs = d.stubs()
    first_delta = threading.Event()
    ended: list[str] = []

    def talk() -> None:
        try:
            for ev in stubs.chat.Chat(chat_pb2.ChatRequest(agent="long", message="a long story"), timeout=60):
                if ev.HasField("delta"):
                    first_delta.set()
                elif ev.HasField("finished"):
                    ended.append(chat_pb2.FinishReason.Name(ev.finished.finish_reason))
        except grpc.RpcError as err:
            ended.append(err.code().name)

    talker = threading.Thread(target=talk)
    talker.start()
    assert first_delta.wait(30)
    stubs.agents.DeleteAgent(agents_pb2.DeleteAgentRequest(name="long"), timeout=30)
    talker.join(30)
    assert ended and ended[0] in ("FINISH_REASON_CANCELLED", "CANCELLED", "UNAVAILABLE", "NOT_FOUND"), ended
    # the turn had ended (and kept nothing) before the agent was deleted
    actions = [r["action"] for r in chat_and_agent_records(d) if r["agent"] == "long"]
    assert actions[-2:] == ["chat.cancel", "agent.delete"], actions

    def successor_transcript(daemon: Daemon) -> list[agents_pb2.TranscriptMessage]:
        return list(daemon.stubs().agents.GetTranscript(agents_pb2.GetTranscriptRequest(name="long"), timeout=10).messages)

    new = agents_pb2.Agent(name="long", model="tiny", sampling=agents_pb2.SamplingParams(max_tokens=4))
    assert stubs.agents.PutAgent(agents_pb2.PutAgentRequest(agent=new), timeout=10).created
    assert successor_transcript(d) == []
    assert d.stop() == 0

    again = daemon_factory(CONFIG, home=d.home)
    assert successor_transcript(again) == []
