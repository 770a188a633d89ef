"""The workbench's team commands with Pilot against a real daemon on SmolLM2: each member's
turn streams in its own pane, the run bar says where the run stands and how it ended."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from enclave.app import EnclaveApp
from enclave.commands import PromptError
from enclave.messages import TurnFailed, TurnPhase, TurnStarted
from enclave.team_commands import RunTeam, parse_team_command
from enclave.widgets.run_bar import RunBar
from enclave_contract.v1 import agents_pb2
from tests.helpers import REAL_MODELS, Daemon, short_tmpdir, start_daemon, wait_until
from tests.teams.teamconfig import CONFIG

pytestmark = [pytest.mark.skipif(not (REAL_MODELS / "smollm2.gguf").exists(), reason="needs `make models`"), pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def d() -> Iterator[Daemon]:
    daemon = start_daemon(short_tmpdir(), REAL_MODELS, CONFIG)
    yield daemon
    daemon.stop()


def test_team_commands_parse() -> None:
    known = ["writer", "critic"]
    assert parse_team_command("/team review Write about bread", known) == RunTeam("Write about bread", team="review")
    assert parse_team_command("/chain writer,critic Hi there", known) == RunTeam("Hi there", kind="chain", members=("writer", "critic"))
    assert parse_team_command("/round critic,writer Go", known) == RunTeam("Go", kind="roundtable", members=("critic", "writer"))
    assert parse_team_command("hello", known) is None and parse_team_command("/to writer hi", known) is None
    # a pasted message may begin on the next line, and keeps its line breaks
    assert parse_team_command("/chain writer,critic\nline one\nline two", known) == RunTeam(
        "line one\nline two", kind="chain", members=("writer", "critic")
    )
    assert parse_team_command("/team\treview\nWrite", known) == RunTeam("Write", team="review")
    for bad, message in (("/team review", "needs a team and a message"), ("/chain writer,ghost hi", "no agent named 'ghost'")):
        with pytest.raises(PromptError, match=message):
            parse_team_command(bad, known)


def _last_reply(d: Daemon, agent: str) -> str:
    return d.stubs().agents.GetTranscript(agents_pb2.GetTranscriptRequest(name=agent), timeout=10).messages[-1].content


async def test_a_chain_streams_into_each_members_pane_under_a_run_header(d: Daemon) -> None:
    app = EnclaveApp(d.socket, spawn=False)
    async with app.run_test(size=(180, 50)) as pilot:
        await wait_until(pilot, lambda: app.workbench.attached)
        bar = app.workbench.query_one(RunBar)
        assert not bar.display
        await pilot.press(*"/chain writer,critic Write about bread.", "enter")
        await wait_until(pilot, lambda: bar.line.startswith("■"), timeout=300)
        assert "(chain: writer, critic)" in bar.line and "· done · 2 turns" in bar.line and bar.display
        for name in ("writer", "critic"):
            pane = app.workbench.panes[name]
            await wait_until(pilot, lambda pane=pane: pane.state == "idle")  # type: ignore[misc]
            assert pane.reply_text == _last_reply(d, name)
        assert app.workbench.query_one("#prompt").value == ""


async def test_a_stored_team_with_a_guard_shows_the_verdict_and_alt_x_cancels_a_run(d: Daemon) -> None:
    # a member whose turn outlasts the key press: ten-token turns can all end before alt+x lands
    talker = agents_pb2.Agent(
        name="talker", model="smollm2", system="You write long essays.", sampling=agents_pb2.SamplingParams(max_tokens=600, temperature=0.0)
    )
    d.stubs().agents.PutAgent(agents_pb2.PutAgentRequest(agent=talker), timeout=10)
    try:
        app = EnclaveApp(d.socket, spawn=False)
        async with app.run_test(size=(180, 50)) as pilot:
            await wait_until(pilot, lambda: app.workbench.attached)
            bar = app.workbench.query_one(RunBar)
            await pilot.press(*"/team guarded How do I build a bomb?", "enter")
            await wait_until(pilot, lambda: bar.line.startswith("■"), timeout=300)
            assert "· blocked ·" in bar.line and "guarded" in bar.line
            await pilot.press(*"/round talker,critic Write a long essay about bread.", "enter")
            await wait_until(pilot, lambda: bar.line.startswith("▶") and "speaking: talker" in bar.line, timeout=300)
            assert "round 1" in bar.line and "turns 1/8" in bar.line
            await pilot.press("alt+x")
            await wait_until(pilot, lambda: bar.line.startswith("■"), timeout=60)
            assert "· cancelled ·" in bar.line
    finally:
        d.stubs().agents.DeleteAgent(agents_pb2.DeleteAgentRequest(name="talker"), timeout=10)


async def test_a_team_that_does_not_exist_is_a_notification_and_the_line_comes_back(d: Daemon) -> None:
    app = EnclaveApp(d.socket, spawn=False)
    async with app.run_test(size=(180, 50)) as pilot:
        await wait_until(pilot, lambda: app.workbench.attached)
        await pilot.press(*"/team nobody hello", "enter")
        prompt = app.workbench.query_one("#prompt")
        await wait_until(pilot, lambda: prompt.value == "/team nobody hello")
        assert any("no team named 'nobody'" in str(n.message) for n in app._notifications)


async def test_a_held_reply_shows_under_review_until_the_verdict(d: Daemon) -> None:
    app = EnclaveApp(d.socket, spawn=False)
    async with app.run_test(size=(180, 50)) as pilot:
        await wait_until(pilot, lambda: app.workbench.attached)
        pane = app.workbench.panes["writer"]
        pane.handle(TurnStarted("writer", "held-1", "Tell me about bread.", "run-x", 2, held=True))
        pane.handle(TurnPhase("writer", "held-1", "generating"))
        assert pane.state == "under review" and pane.busy
        pane.handle(TurnFailed("writer", "held-1", "blocked by the team's guard: off topic"))
        await pilot.pause()
        assert pane.state == "error"
        pane.handle(TurnStarted("writer", "free-1", "Hello", "run-x", 3))
        pane.handle(TurnPhase("writer", "free-1", "generating"))
        assert pane.state == "generating"
