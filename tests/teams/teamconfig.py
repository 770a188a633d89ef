"""The agents and teams the team tests share: SmolLM2 agents at temperature 0 with short
replies (the machine is small), and a guard whose verdicts on SmolLM2 are known."""

from __future__ import annotations

from collections.abc import Iterable

import grpc

from enclave_contract.v1 import chat_pb2, teams_pb2
from tests.helpers import Stubs

RUN_SECONDS = 300  # only ends a test that hangs: the machine the tests share may be busy
AGENTS = {
    "writer": ("You write short answers.", 10),
    "critic": ("You criticise drafts briefly.", 10),
    "editor": ("You edit text.", 10),
    "boss": ("You pick the next speaker.", 4),
    "triage": ("You are a triage assistant. You can answer simple greetings. Everything else you escalate.", 10),
    "screener": ("You are a safety checker. Messages about food are safe: allow them. Messages about weapons must be blocked.", 16),
}

CONFIG = (
    """
[[models]]
name = "smollm2"
n_ctx = 1024
n_seq_max = 4
n_threads = 2

[[agents]]
name = "broken"
model = "missing"
"""
    + "".join(
        f'\n[[agents]]\nname = "{name}"\nmodel = "smollm2"\nsystem = "{system}"\ntemperature = 0.0\nmax_tokens = {n}\n'
        for name, (system, n) in AGENTS.items()
    )
    + """
[[teams]]
name = "review"
kind = "chain"
members = ["writer", "critic", "editor"]
instructions = { critic = "Improve this draft:" }

[[teams]]
name = "round"
kind = "roundtable"
members = ["writer", "critic"]
max_turns = 4

[[teams]]
name = "panel"
kind = "director"
members = ["writer", "critic"]
director = "boss"
max_turns = 3

[[teams]]
name = "tiers"
kind = "escalate"
members = ["triage", "writer"]

[[teams]]
name = "guarded"
kind = "chain"
members = ["writer", "critic"]
guard = { agent = "screener", input = true, output = "hold", on_block = "stop" }
"""
)


def run(stubs: Stubs, message: str, team: str = "", adhoc: teams_pb2.Team | None = None, **kw: object) -> list[chat_pb2.ChatEvent]:
    request = teams_pb2.RunTeamRequest(team=team, message=message, adhoc=adhoc, **kw)
    return list(stubs.teams.Run(request, timeout=RUN_SECONDS))


def finished(events: Iterable[chat_pb2.ChatEvent]) -> chat_pb2.RunFinished:
    ends = [e.run_finished for e in events if e.HasField("run_finished")]
    assert len(ends) == 1, ends
    return ends[0]


def speakers(events: Iterable[chat_pb2.ChatEvent]) -> list[str]:
    return [e.agent for e in events if e.HasField("started")]


def text_of(events: Iterable[chat_pb2.ChatEvent], step: int) -> str:
    return "".join(e.delta.text for e in events if e.step == step and e.HasField("delta"))


def started(events: Iterable[chat_pb2.ChatEvent], agent: str) -> list[chat_pb2.ChatEvent]:
    return [e for e in events if e.agent == agent and e.HasField("started")]


def put(stubs: Stubs, **fields: object) -> teams_pb2.PutTeamResponse:
    return stubs.teams.PutTeam(teams_pb2.PutTeamRequest(team=teams_pb2.Team(**fields)), timeout=10)


def refused(stubs: Stubs, **fields: object) -> grpc.RpcError:
    try:
        put(stubs, **fields)
    except grpc.RpcError as exc:
        return exc
    raise AssertionError("the team was accepted")


def watch(stubs: Stubs) -> tuple[list[chat_pb2.ChatEvent], grpc.Future]:
    """A Watch stream of everything, followed in a thread; it returns once the stream is
    subscribed (it saw the change of a probe agent made for the purpose)."""
    import threading

    from enclave_contract.v1 import agents_pb2
    from tests.helpers import wait_for

    seen: list[chat_pb2.ChatEvent] = []
    stream = stubs.chat.Watch(chat_pb2.WatchRequest(), timeout=300)

    def follow() -> None:
        try:
            for ev in stream:
                seen.append(ev)
        except grpc.RpcError:
            pass  # cancelled by the test

    threading.Thread(target=follow, daemon=True).start()
    probe = agents_pb2.Agent(name="probe", model="smollm2")
    wait_for(
        lambda: (
            stubs.agents.PutAgent(agents_pb2.PutAgentRequest(agent=probe), timeout=10) is not None and any(e.agent == "probe" for e in seen)
        ),
        30,
    )
    return seen, stream
