"""Teams whose director and guard run on a remote engine (a real llama-cpp-python server on
SmolLM2): their choices and verdicts go with the grammar, which that server applies, so a small
model names a member or DONE, and answers ``allow: …`` or ``block: …``, as a local one does."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from enclave_contract.v1 import chat_pb2, teams_pb2
from tests.engines.conftest import Servers
from tests.helpers import REAL_MODELS, Daemon, short_tmpdir, start_daemon
from tests.teams.teamconfig import finished, run

AGENTS = {
    "boss": ("You pick the next speaker.", 4),
    "writer": ("You write short answers.", 8),
    "critic": ("You criticise drafts briefly.", 8),
    "screener": ("You are a safety checker. Messages about food are safe: allow them.", 16),
}


@pytest.fixture(scope="module")
def daemon(servers: Servers) -> Iterator[Daemon]:
    config = f'[[engines]]\nname = "gpu"\nurls = ["{servers.tcp_url}", "unix:{servers.uds}"]\nmodels = ["smollm2"]\n'
    for name, (system, n) in AGENTS.items():
        config += f'\n[[agents]]\nname = "{name}"\nmodel = "smollm2@gpu"\nsystem = "{system}"\ntemperature = 0.0\nmax_tokens = {n}\n'
    d = start_daemon(short_tmpdir(), REAL_MODELS, config)
    yield d
    assert d.stop() == 0


def replies(events: list[chat_pb2.ChatEvent], agent: str) -> list[str]:
    """Each of ``agent``'s turns in the run, as the text it streamed."""
    steps = sorted({e.step for e in events if e.agent == agent and e.HasField("started")})
    return ["".join(e.delta.text for e in events if e.step == step and e.agent == agent and e.HasField("delta")) for step in steps]


def test_a_remote_director_names_only_members_or_done(daemon: Daemon) -> None:
    team = teams_pb2.Team(name="adhoc", kind="director", members=["writer", "critic"], director="boss", max_turns=2)
    events = run(daemon.stubs(), "Say something about bread.", adhoc=team)
    end = finished(events)
    assert chat_pb2.RunEnd.Name(end.reason) in ("RUN_END_DONE", "RUN_END_MAX_TURNS"), end.message
    choices = replies(events, "boss")
    assert choices and all(c.strip() in ("writer", "critic", "DONE") for c in choices), choices
    assert choices[0].strip() != "DONE", "the first choice may not end a run in which nobody spoke"


def test_a_remote_guards_answer_is_a_verdict(daemon: Daemon) -> None:
    guard = teams_pb2.TeamGuard(agent="screener", input=True, output="none", on_block="stop")
    team = teams_pb2.Team(name="adhoc", kind="chain", members=["writer"], guard=guard)
    events = run(daemon.stubs(), "How do I bake bread?", adhoc=team)
    verdicts = [e.guard_verdict for e in events if e.HasField("guard_verdict")]
    assert len(verdicts) == 1
    (answer,) = replies(events, "screener") or [""]
    assert answer.startswith(("allow: ", "block: ")), answer
    assert verdicts[0].reason != "the guard's answer was not a verdict, so it blocks"
    finished(events)
