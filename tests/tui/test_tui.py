"""The workbench driven with Textual's Pilot against a real daemon (real llama.cpp, tiny model)."""

from __future__ import annotations

import asyncio
import re
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from textual import events
from textual.app import App, ComposeResult
from textual.command import CommandList, CommandPalette
from textual.widgets import Input, Static, TextArea

from enclave.app import EnclaveApp
from enclave.commands import PromptError, Send, parse_prompt
from enclave.messages import TurnDelta, TurnFinished, TurnStarted
from enclave.screens.agent_editor import AgentEditor
from enclave.screens.confirm import ConfirmScreen
from enclave.settings import Settings, SettingsError, load_settings
from enclave.team_commands import parse_team_command
from enclave.terminal import tmux_copy
from enclave.views import AgentView, ChatMessage
from enclave.widgets.agent_pane import ENDINGS, SHOWN_MESSAGES, AgentPane
from enclave.widgets.model_panel import ModelPanel
from enclave.widgets.prompt import PromptInput
from enclave.widgets.run_bar import RunBar
from enclave_contract.v1 import agents_pb2, chat_pb2, models_pb2
from tests.helpers import Daemon, short_tmpdir, wait_until

pytestmark = pytest.mark.timeout(120)


def last_reply(daemon: Daemon, agent: str) -> str:
    messages = daemon.stubs().agents.GetTranscript(agents_pb2.GetTranscriptRequest(name=agent), timeout=10).messages
    return messages[-1].content


async def test_one_pane_per_agent_and_sending_to_the_selected_one(shared_daemon: Daemon) -> None:
    app = EnclaveApp(shared_daemon.socket, spawn=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_until(pilot, lambda: app.workbench.attached)
        assert list(app.workbench.panes) == ["a1", "a2", "a3", "a4"]
        assert app.workbench.panes["a1"].selected
        await pilot.press(*"hello", "enter")
        pane = app.workbench.panes["a1"]
        await wait_until(pilot, lambda: pane.state == "idle" and pane.reply_text != "")
        assert pane.reply_text == last_reply(shared_daemon, "a1")
        assert all(p.reply_text == "" for name, p in app.workbench.panes.items() if name != "a1")


async def test_all_sends_to_every_pane(shared_daemon: Daemon) -> None:
    app = EnclaveApp(shared_daemon.socket, spawn=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_until(pilot, lambda: app.workbench.attached)
        before = {n: p.turn_id for n, p in app.workbench.panes.items()}
        await pilot.press(*"/all status", "enter")
        await wait_until(pilot, lambda: all(p.turn_id != before[n] and p.state == "idle" for n, p in app.workbench.panes.items()))
        for name, pane in app.workbench.panes.items():
            assert pane.reply_text == last_reply(shared_daemon, name)


async def test_transcripts_are_shown_on_start_and_turns_of_other_clients_stream_in(shared_daemon: Daemon) -> None:
    stubs = shared_daemon.stubs()
    list(stubs.chat.Chat(chat_pb2.ChatRequest(agent="a2", message="before the TUI"), timeout=60))
    app = EnclaveApp(shared_daemon.socket, spawn=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_until(pilot, lambda: app.workbench.attached)
        pane = app.workbench.panes["a2"]
        await wait_until(pilot, lambda: pane.reply_text == last_reply(shared_daemon, "a2"))
        events = await asyncio.to_thread(
            lambda: list(stubs.chat.Chat(chat_pb2.ChatRequest(agent="a3", message="from another client"), timeout=60))
        )
        await wait_until(
            pilot, lambda: app.workbench.panes["a3"].turn_id == events[0].turn_id and app.workbench.panes["a3"].state == "idle"
        )
        assert app.workbench.panes["a3"].reply_text == last_reply(shared_daemon, "a3")


async def test_pane_selection_keys(shared_daemon: Daemon) -> None:
    app = EnclaveApp(shared_daemon.socket, spawn=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.workbench.attached)
        await pilot.press("alt+right")
        assert app.workbench.selected_pane.agent.name == "a2"
        await pilot.press("alt+left", "alt+left")
        assert app.workbench.selected_pane.agent.name == "a4"
        await pilot.press("alt+3")
        assert app.workbench.selected_pane.agent.name == "a3"
        assert [p.selected for p in app.workbench.panes.values()] == [False, False, True, False]


async def test_no_daemon_shows_a_banner_not_a_traceback() -> None:
    app = EnclaveApp(short_tmpdir() / "none.sock", spawn=False)
    async with app.run_test(size=(80, 24)) as pilot:
        banner = app.workbench.query_one("#banner", Static)
        await pilot.pause()
        # at once, before the first attempt gives up: not a blank screen
        assert banner.has_class("visible") and "connecting to enclaved on" in str(banner.render())
        assert not banner.has_class("problem")  # news, not an error yet
        await wait_until(pilot, lambda: "not connected" in str(banner.render()), timeout=15)
        assert "not connected — retrying: no enclaved answers at" in str(banner.render()) and banner.has_class("problem")


def test_prompt_commands() -> None:
    known = ["a", "b", "c"]
    assert parse_prompt("hi there", known) == Send("hi there", [])
    assert parse_prompt("/all  go", known) == Send("go", known)
    assert parse_prompt("/to a,c go on", known) == Send("go on", ["a", "c"])
    assert parse_prompt("//etc/hosts: what is this?", known) == Send("/etc/hosts: what is this?", [])
    for bad, words in [
        ("/all", "needs a message"),
        ("/to a", "needs agents"),
        ("/to z hi", "no agent named 'z'"),
        ("/etc/hosts: what?", "start the line with // to send a message that begins with /"),
    ]:
        with pytest.raises(PromptError, match=words):
            parse_prompt(bad, known)


def test_an_unknown_command_names_every_command_and_a_command_is_the_whole_first_word() -> None:
    known = ["a", "b"]
    with pytest.raises(PromptError) as error:
        parse_prompt("/etc/hosts: what?", known)
    message = str(error.value)
    assert message.startswith("unknown command '/etc/hosts:'") and "\n" not in message
    for command in ("/all", "/to", "/team", "/chain", "/round", "//"):
        assert command in message, f"{command} is named"
    for line, word in [("/allfoo x", "/allfoo"), ("/tomorrow a hi", "/tomorrow"), ("/all, go", "/all,"), ("/teams t hi", "/teams")]:
        with pytest.raises(PromptError, match=f"unknown command {word!r}"):
            parse_prompt(line, known)
    # the word ends at any white space, a pasted line break too
    assert parse_prompt("/all\nline one\nline two", known) == Send("line one\nline two", known)
    assert parse_prompt("/to\ta,b\thi", known) == Send("hi", ["a", "b"])
    # the team commands' word ends the same way (they are read first, by team_commands)
    with pytest.raises(PromptError, match="/chain needs agents and a message: /chain a,b TEXT"):
        parse_team_command("/chain\nhi", known)


async def test_layout_fits_the_terminal_and_a_pane_zooms(shared_daemon: Daemon) -> None:
    app = EnclaveApp(shared_daemon.socket, spawn=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_until(pilot, lambda: app.workbench.attached)
        await pilot.pause()
        a1, a2, a3 = (app.workbench.panes[n].region for n in ("a1", "a2", "a3"))
        assert a1.y == a2.y and a1.x < a2.x, "2x2 at 160x48: a1 and a2 side by side"
        assert a3.y > a1.y and a3.x == a1.x
        await pilot.press("alt+2", "alt+z")
        await pilot.pause()
        zoomed = app.workbench.panes["a2"].region
        assert zoomed.width > 150 and zoomed.height > 35
        assert all(app.workbench.panes[n].region.area == 0 for n in ("a1", "a3", "a4"))
        await pilot.press("alt+z")
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        a1, a2 = app.workbench.panes["a1"].region, app.workbench.panes["a2"].region
        assert a1.x == a2.x and a2.y > a1.y, "one column at 80x24"
        assert a1.height == 3 and a2.height > 10, "too small for four: the others fold to their header"
        await pilot.press("alt+1")
        await pilot.pause()
        assert app.workbench.panes["a1"].region.height > 10 and app.workbench.panes["a2"].region.height == 3


def agents_of(daemon: Daemon) -> dict[str, agents_pb2.Agent]:
    return {a.name: a for a in daemon.stubs().agents.ListAgents(agents_pb2.ListAgentsRequest(), timeout=10).agents}


def model_state(daemon: Daemon, name: str) -> int:
    models = daemon.stubs().models.ListModels(models_pb2.ListModelsRequest(), timeout=10).models
    return next(m.state for m in models if m.name == name)


async def test_models_panel_shows_live_status_and_loads_and_unloads(shared_daemon: Daemon) -> None:
    stubs = shared_daemon.stubs()
    await asyncio.to_thread(lambda: list(stubs.chat.Chat(chat_pb2.ChatRequest(agent="a1", message="time me"), timeout=60)))
    app = EnclaveApp(shared_daemon.socket, spawn=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_until(pilot, lambda: app.workbench.attached)
        await pilot.press("alt+m")
        panel = app.workbench.query_one(ModelPanel)
        assert panel.display and panel.has_focus
        await wait_until(pilot, lambda: "small" in panel.rows)
        assert panel.get_cell("tiny", "ctx/agent") == "4096"
        # latency percentiles of the turns made, from the same figures as /metrics
        assert re.fullmatch(r"(\d+\.\d\d/){2}\d+\.\d\d s", panel.get_cell("tiny", "first token p50/p95/p99"))
        assert re.fullmatch(r"(\d+\.\d\d/){2}\d+\.\d\d s", panel.get_cell("tiny", "turn p50/p95/p99"))
        assert panel.get_cell("small", "turn p50/p95/p99") == "-"
        await wait_until(pilot, lambda: app.workbench.panes["a1"].context_size == 4096)
        used = agents_of(shared_daemon)["a1"].context_tokens
        assert f"ctx {used}/4096" in str(app.workbench.panes["a1"]._header.render())
        while panel.highlighted_model != "small":
            await pilot.press("down")
        await pilot.press("l")
        await wait_until(pilot, lambda: panel.get_cell("small", "state") == "loaded")
        assert model_state(shared_daemon, "small") == models_pb2.MODEL_STATE_LOADED
        assert panel.get_cell("small", "memory") != "-"
        await pilot.press("u")
        await wait_until(pilot, lambda: panel.get_cell("small", "state") == "available")
        assert model_state(shared_daemon, "small") == models_pb2.MODEL_STATE_AVAILABLE
        await pilot.press("enter")  # Enter loads too, though the footer names only `l`
        await wait_until(pilot, lambda: panel.get_cell("small", "state") == "loaded")
        await pilot.press("u")
        await wait_until(pilot, lambda: panel.get_cell("small", "state") == "available")
        await pilot.press("escape")
        assert not panel.display and app.workbench.query_one("#prompt").has_focus


async def test_agent_editor_creates_edits_and_deletes(shared_daemon: Daemon) -> None:
    app = EnclaveApp(shared_daemon.socket, spawn=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_until(pilot, lambda: app.workbench.attached)
        await pilot.press("alt+n")
        await wait_until(pilot, lambda: isinstance(app.screen, AgentEditor))
        await pilot.press(*"scribe")
        editor = app.screen
        editor.query_one("#system", TextArea).text = "You write things down."
        editor.query_one("#max_tokens", Input).value = "12"
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: "scribe" in app.workbench.panes)
        assert not isinstance(app.screen, AgentEditor)
        made = agents_of(shared_daemon)["scribe"]
        assert app.workbench.panes["a1"].context_tokens == agents_of(shared_daemon)["a1"].context_tokens > 0, "other panes keep their state"
        assert made.system == "You write things down." and made.sampling.max_tokens == 12 and made.model == "tiny"

        await pilot.press("alt+5", "alt+e")
        await wait_until(pilot, lambda: isinstance(app.screen, AgentEditor))
        editor = app.screen
        assert editor.query_one("#name", Input).disabled, "an agent's name is its identity"
        editor.query_one("#temperature", Input).value = "9"
        await pilot.press("ctrl+s")
        error = editor.query_one("#editor-error", Static)
        await wait_until(pilot, lambda: "temperature must be between 0 and 5" in str(error.render()))
        assert app.screen is editor, "a mistake keeps the editor open with what was typed"
        editor.query_one("#temperature", Input).value = "0.2"
        editor.query_one("#system", TextArea).text = "You keep notes."
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: app.workbench.panes["scribe"].agent.system == "You keep notes.")
        assert agents_of(shared_daemon)["scribe"].sampling.temperature == pytest.approx(0.2)

        await pilot.press("alt+e")
        await wait_until(pilot, lambda: isinstance(app.screen, AgentEditor))
        await pilot.press("ctrl+d")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_until(pilot, lambda: "scribe" not in app.workbench.panes)
        assert "scribe" not in agents_of(shared_daemon)
        assert app.workbench.selected_pane.agent.name in app.workbench.panes


async def test_broadcast_key_copy_and_clear(shared_daemon: Daemon) -> None:
    app = EnclaveApp(shared_daemon.socket, spawn=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_until(pilot, lambda: app.workbench.attached)
        before = {n: p.turn_id for n, p in app.workbench.panes.items()}
        await pilot.press(*"to everyone", "alt+a")
        await wait_until(pilot, lambda: all(p.turn_id != before[n] and p.state == "idle" for n, p in app.workbench.panes.items()))
        assert app.workbench.query_one("#prompt", Input).value == ""
        await pilot.press("alt+2", "alt+c")
        assert app.clipboard == app.workbench.panes["a2"].reply_text == last_reply(shared_daemon, "a2")
        assert app.workbench.panes["a2"].context_tokens > 0
        await pilot.press("alt+l")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_until(pilot, lambda: not app.workbench.panes["a2"].body.entries)
        assert agents_of(shared_daemon)["a2"].turns == 0 and app.workbench.panes["a2"].context_tokens == 0
        assert app.workbench.panes["a1"].body.entries, "only the selected agent is cleared"
        a2 = app.workbench.panes["a2"]
        assert a2.body.system and f"system: {a2.agent.system}" in a2.body.plain_lines()[0], "the system prompt stays"
        await pilot.press("alt+l")  # nothing left to clear: no question
        await wait_until(pilot, lambda: any("conversation is empty: nothing to clear" in str(n.message) for n in app._notifications))
        assert not isinstance(app.screen, ConfirmScreen)


async def test_cancel_keys_stop_turns(shared_daemon: Daemon) -> None:
    stubs = shared_daemon.stubs()
    for name in ("long1", "long2"):
        stubs.agents.PutAgent(
            agents_pb2.PutAgentRequest(
                agent=agents_pb2.Agent(name=name, model="tiny", sampling=agents_pb2.SamplingParams(max_tokens=3000))
            ),
            timeout=10,
        )
    app = EnclaveApp(shared_daemon.socket, spawn=False)
    try:
        async with app.run_test(size=(160, 48)) as pilot:
            await wait_until(pilot, lambda: app.workbench.attached)
            await pilot.press("alt+5", *"go on", "enter")
            await wait_until(pilot, lambda: app.workbench.panes["long1"].state == "generating")
            await pilot.press("escape")
            await wait_until(pilot, lambda: app.workbench.panes["long1"].state == "cancelled")
            await pilot.press(*"/to long1,long2 again", "enter")
            await wait_until(pilot, lambda: all(app.workbench.panes[n].state == "generating" for n in ("long1", "long2")))
            await pilot.press("alt+x")
            await wait_until(pilot, lambda: all(app.workbench.panes[n].state == "cancelled" for n in ("long1", "long2")))
    finally:
        for name in ("long1", "long2"):
            stubs.agents.DeleteAgent(agents_pb2.DeleteAgentRequest(name=name), timeout=10)


async def test_keys_come_from_the_settings_and_every_action_is_in_the_palette(shared_daemon: Daemon) -> None:
    app = EnclaveApp(shared_daemon.socket, Settings(keys={"pane.next": "ctrl+n"}), spawn=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_until(pilot, lambda: app.workbench.attached)
        await pilot.press("ctrl+n")
        assert app.workbench.selected_pane.agent.name == "a2"
        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        for binding in EnclaveApp.BINDINGS:
            if binding.id not in {f"pane.{i}" for i in range(5, 10)}:
                assert binding.description in commands, f"{binding.id} has a palette entry"
        assert "ctrl+n" in commands["Next pane"].help
        await pilot.press("ctrl+p")
        await pilot.press(*"zoom", "enter")
        await wait_until(pilot, lambda: app.workbench.query_one("#panes").has_class("zoomed"))


def test_settings_file(tmp_path: Path) -> None:
    ids = EnclaveApp.binding_ids()
    path = tmp_path / "client.toml"
    path.write_text('spawn = false\nstream_hz = 12\ndaemon_args = ["--models", "/srv/models"]\n[keys]\n"turn.cancel_all" = "f8"\n')
    settings = load_settings(path, ids)
    assert settings == Settings(spawn=False, stream_hz=12, daemon_args=("--models", "/srv/models"), keys={"turn.cancel_all": "f8"})
    for text, words in [
        ('[keys]\n"pane.nxt" = "ctrl+n"', "'pane.nxt' is not a binding id"),
        ("spawn = 1", "spawn must be true or false"),
        ("stream_hz = 0", "stream_hz must be a whole number from 1 to 30"),
        ("colour = 1", "unknown setting 'colour'"),
        ("[keys", "not valid TOML"),
        ('[keys]\n"pane.next" = "hyper+banana"', "'pane.next': 'hyper\\+banana' is not a key name"),
        ('[keys]\n"pane.next" = "alt+x"', "'alt\\+x' is bound to both 'pane.next' and 'turn.cancel_all'"),
        ('[keys]\n"pane.zoom" = "f2"\n"agent.new" = "f2"', "'f2' is bound to both 'pane.zoom' and 'agent.new'"),
        ('[keys]\n"audit.filter" = "ctrl+q"', "'ctrl\\+q' is bound to both 'app.quit' and 'audit.filter'"),
        ('[keys]\n"teams.new" = "e"', "'e' is bound to both 'teams.new' and 'teams.edit'"),
        ('[keys]\n"team.picker" = "alt+m"', "'alt\\+m' is bound to both 'team.picker' and 'models.toggle'"),
    ]:
        path.write_text(text)
        with pytest.raises(SettingsError, match=words):
            load_settings(path, ids)
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "missing.toml", ids)


SOLO_CONFIG = """
[[models]]
name = "tiny"
n_ctx = 4096
n_seq_max = 2
n_threads = 2

[[agents]]
name = "solo"
model = "tiny"
max_tokens = 3000
"""


async def test_daemon_killed_and_restarted_mid_stream(daemon_factory: Callable[..., Daemon]) -> None:
    home = short_tmpdir()
    daemon = daemon_factory(SOLO_CONFIG, home=home)
    app = EnclaveApp(daemon.socket, spawn=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.workbench.attached)
        pane = app.workbench.panes["solo"]
        await pilot.press(*"a long story", "enter")
        await wait_until(pilot, lambda: pane.state == "generating" and pane.reply_text != "")
        daemon.proc.kill()
        daemon.proc.wait()
        banner = app.workbench.query_one("#banner", Static)
        broke = "disconnected — retrying: the connection to enclaved broke (it stopped or is restarting)"
        await wait_until(pilot, lambda: broke in str(banner.render()) and banner.has_class("visible"))  # not gRPC's words
        assert pane.state == "offline" and not app.workbench.attached
        await asyncio.sleep(1)  # the workbench keeps trying while nothing answers
        assert app.is_running and "retrying" in str(banner.render())

        restarted = await asyncio.to_thread(daemon_factory, SOLO_CONFIG, home=home)
        assert restarted.socket == daemon.socket
        await wait_until(pilot, lambda: app.workbench.attached and not banner.has_class("visible"))
        pane = app.workbench.panes["solo"]
        assert pane.state == "idle"
        # the message the kill cut is there, its reply marked as broken off
        shown = [(e.kind, e.text) for e in pane.body.entries]
        assert shown == [("user", "a long story"), ("reply", ""), ("marker", f"— {ENDINGS['interrupted']}")], shown
        restarted.stubs().agents.PutAgent(
            agents_pb2.PutAgentRequest(
                agent=agents_pb2.Agent(name="solo", model="tiny", sampling=agents_pb2.SamplingParams(max_tokens=16))
            ),
            timeout=10,
        )
        await pilot.press(*"after the restart", "enter")
        await wait_until(pilot, lambda: pane.state == "idle" and pane.reply_text != "")
        assert pane.reply_text == last_reply(restarted, "solo")


async def test_without_a_daemon_the_workbench_starts_one(model_dir: Path) -> None:
    home = short_tmpdir()
    (home / "enclave.toml").write_text(SOLO_CONFIG)
    socket = home / "run" / "enclaved.sock"
    settings = Settings(daemon_args=("--models", str(model_dir), "--data", str(home / "data"), "--config", str(home / "enclave.toml")))
    app = EnclaveApp(socket, settings)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_until(pilot, lambda: app.workbench.attached, timeout=60)
            assert app.session.spawned is not None and list(app.workbench.panes) == ["solo"]
            assert any("started enclaved in the background" in n.message for n in app._notifications)
        assert app.session.spawned.process.poll() is None, "quitting the workbench leaves the daemon running"
        assert (socket.parent / "enclaved.log").stat().st_mode & 0o777 == 0o600
    finally:
        if app.session.spawned is not None:
            app.session.spawned.process.terminate()
            app.session.spawned.process.wait(20)


@pytest.mark.parametrize(
    "text",
    [
        "Intro\n\n```python\ndef f(x):\n\n    return x * 2\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\nEnd **bold**.",
        "Intro with `code` and a [link](http://x.example/a).\n\n- one\n- two\n\n1. first\n2. second\n\n> quoted\nlines\n\nEnd **bold**.",
    ],
    ids=["fence and table", "paragraphs and lists"],
)
async def test_a_streamed_reply_is_drawn_as_the_same_markdown_as_a_whole_one(text: str) -> None:
    """Blocks drawn as they stream (and tables and fences, drawn again in full at the end) are
    the reply drawn whole."""
    streamed, whole = AgentPane(AgentView(name="m", model="tiny"), 1), AgentPane(AgentView(name="w", model="tiny"), 2)

    class Host(App[None]):
        CSS = "AgentPane { height: 1fr; }"

        def compose(self) -> ComposeResult:
            yield streamed
            yield whole

    app = Host()
    async with app.run_test(size=(80, 120)) as pilot:
        await pilot.pause()
        streamed.handle(TurnStarted("m", "t", user_message="q"))
        for i in range(0, len(text), 3):
            streamed.handle(TurnDelta("m", "t", text[i : i + 3], tokens=1))
            streamed.flush()
        assert streamed.body.reply_blocks, "whole blocks are drawn while the reply streams"
        streamed.handle(TurnFinished("m", "t", finish_reason="end_of_turn", context_tokens=0, tokens_per_second=0.0))
        whole.show_transcript([ChatMessage("user", "q"), ChatMessage("assistant", text)])
        await pilot.pause()
        assert streamed.body.plain_lines() == whole.body.plain_lines()
        width = streamed.body.scrollable_content_region.width
        assert all(len(line) <= width and "\n" not in line for line in streamed.body.plain_lines()), "one row of the screen each"
        assert "End bold." in streamed.body.plain_lines()
        assert streamed.reply_text == text


async def test_a_long_conversation_keeps_the_last_messages_on_screen() -> None:
    pane = AgentPane(AgentView(name="m", model="tiny"), 1)

    class Host(App[None]):
        def compose(self) -> ComposeResult:
            yield pane

    async with Host().run_test(size=(80, 30)) as pilot:
        messages = [ChatMessage(role="user" if i % 2 == 0 else "assistant", content=f"message {i}") for i in range(SHOWN_MESSAGES + 6)]
        pane.show_transcript(messages)
        await pilot.pause()
        shown = pane.body.entries
        assert len(shown) == SHOWN_MESSAGES and shown[0].text == "message 6"
        assert pane.body.plain_lines()[0] == "… 6 earlier messages (the daemon keeps them all)"
        assert pane.reply_text == f"message {SHOWN_MESSAGES + 5}"


def test_alt_digit_as_terminals_send_it_is_alt_digit() -> None:
    """tmux and xterm send alt+3 as ESC 3; Textual alone reads it as '£'."""
    from textual._xterm_parser import XTermParser

    from enclave.terminal import read_alt_digits

    read_alt_digits()
    parser = XTermParser(debug=False)
    keys = [e.key for e in [*parser.feed("\x1b3"), *parser.feed("")] if isinstance(e, events.Key)]
    assert keys == ["alt+3"]


async def test_a_multi_line_paste_is_kept_whole() -> None:
    prompt = PromptInput(id="p")

    class Host(App[None]):
        def compose(self) -> ComposeResult:
            yield prompt

    async with Host().run_test() as pilot:
        prompt.post_message(events.Paste("line one\r\nline two\nline three\n"))
        await pilot.pause()
        assert prompt.value == "line one⏎line two⏎line three"
        assert PromptInput.message(prompt.value) == "line one\nline two\nline three"


# ---- the prompt line against the real daemon ---------------------------------------------------


def transcript_of(daemon: Daemon, agent: str) -> list[agents_pb2.TranscriptMessage]:
    return list(daemon.stubs().agents.GetTranscript(agents_pb2.GetTranscriptRequest(name=agent), timeout=10).messages)


def errors_shown(app: EnclaveApp) -> list[str]:
    return [str(n.message) for n in app._notifications if n.severity == "error"]


async def test_a_double_slash_sends_a_message_that_begins_with_a_slash(shared_daemon: Daemon) -> None:
    app = EnclaveApp(shared_daemon.socket, spawn=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_until(pilot, lambda: app.workbench.attached)
        pane = app.workbench.panes["a1"]
        await pilot.press(*"//etc/hosts: what is this?", "enter")
        await wait_until(pilot, lambda: pane.state == "idle" and pane.reply_text != "")
        asked = [m.content for m in transcript_of(shared_daemon, "a1") if m.role == agents_pb2.ROLE_USER]
        assert asked[-1] == "/etc/hosts: what is this?"
        assert not errors_shown(app)


async def test_a_team_command_sends_a_pasted_text_with_its_line_breaks(shared_daemon: Daemon) -> None:
    app = EnclaveApp(shared_daemon.socket, spawn=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_until(pilot, lambda: app.workbench.attached)
        prompt = app.workbench.query_one("#prompt", PromptInput)
        bar = app.workbench.query_one(RunBar)
        await pilot.press(*"/chain a1,a2 ")
        prompt.post_message(events.Paste("line one\nline two\nline three"))
        await wait_until(pilot, lambda: prompt.value == "/chain a1,a2 line one⏎line two⏎line three")
        await pilot.press("enter")
        await wait_until(pilot, lambda: bar.line.startswith("■"))  # the run has ended
        assert "done" in bar.line, bar.line
        asked = [m.content for m in transcript_of(shared_daemon, "a1") if m.role == agents_pb2.ROLE_USER]
        assert asked[-1] == "line one\nline two\nline three", "the first member is told the person's message as it is"
        assert prompt.value == "" and prompt.history[-1] == "/chain a1,a2 line one⏎line two⏎line three"


LIMIT_CONFIG = """
max_message_bytes = 200

[[models]]
name = "tiny"
n_ctx = 1024
n_seq_max = 2
n_threads = 1

[[agents]]
name = "one"
model = "tiny"
max_tokens = 8

[[agents]]
name = "two"
model = "tiny"
max_tokens = 8
"""


async def test_a_paste_over_the_size_limit_goes_back_into_the_prompt_with_one_line_why(daemon_factory: Callable[..., Daemon]) -> None:
    daemon = daemon_factory(LIMIT_CONFIG)
    app = EnclaveApp(daemon.socket, spawn=False)
    paste = "a first line\n" + "x" * 300  # over the daemon's max_message_bytes of 200
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.workbench.attached)
        prompt = app.workbench.query_one("#prompt", PromptInput)
        for command in ("", "/chain one,two "):  # a message to the selected agent, and a team run
            prompt.value = ""
            app.clear_notifications()
            await pilot.press(*command)
            prompt.post_message(events.Paste(paste))
            line = command + paste.replace("\n", "⏎")
            await wait_until(pilot, lambda line=line: prompt.value == line)  # type: ignore[misc]
            await pilot.press("enter")
            await wait_until(pilot, lambda: bool(errors_shown(app)))
            await wait_until(pilot, lambda line=line: prompt.value == line)  # type: ignore[misc]
            [why] = errors_shown(app)
            assert "over the 200-byte limit" in why and "max_message_bytes" in why and "\n" not in why, why
            assert [m for m in transcript_of(daemon, "one") if m.role == agents_pb2.ROLE_USER] == [], "nothing was sent"


async def test_esc_with_text_in_the_prompt_leaves_the_turn_running(daemon_factory: Callable[..., Daemon]) -> None:
    daemon = daemon_factory(SOLO_CONFIG)  # replies of up to 3000 tokens: the turn outlasts the keys
    app = EnclaveApp(daemon.socket, spawn=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.workbench.attached)
        pane = app.workbench.panes["solo"]
        prompt = app.workbench.query_one("#prompt", PromptInput)
        await pilot.press(*"a long story", "enter")
        await wait_until(pilot, lambda: pane.state == "generating" and pane.reply_text != "")
        await pilot.press(*"draft", "escape")
        await wait_until(pilot, lambda: any("Esc cancels a turn when the prompt is empty" in str(n.message) for n in app._notifications))
        assert prompt.value == "draft", "the typed text stays"
        so_far = len(pane.reply_text)
        await wait_until(pilot, lambda: len(pane.reply_text) > so_far)  # the turn goes on
        assert pane.state == "generating"
        await pilot.press(*["backspace"] * len("draft"))
        assert prompt.value == ""
        await pilot.press("escape")
        await wait_until(pilot, lambda: pane.state == "cancelled")
        assert transcript_of(daemon, "solo")[-1].finish_reason == "cancelled"


PAIR_CONFIG = (
    SOLO_CONFIG
    + """
[[agents]]
name = "second"
model = "tiny"
max_tokens = 3000
"""
)


async def test_esc_cancels_a_team_run_whichever_pane_is_selected(daemon_factory: Callable[..., Daemon]) -> None:
    daemon = daemon_factory(PAIR_CONFIG)
    app = EnclaveApp(daemon.socket, spawn=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.workbench.attached)
        bar = app.workbench.query_one(RunBar)
        speaker = app.workbench.panes["solo"]
        await pilot.press(*"/chain solo,second a long story", "enter")
        await wait_until(pilot, lambda: speaker.state == "generating" and speaker.reply_text != "")
        await pilot.press("alt+2")  # the pane of the member whose turn has not come
        assert app.workbench.selected_pane.agent.name == "second" and bar.live_run
        await pilot.press("escape")
        await wait_until(pilot, lambda: bar.line.startswith("■"))
        assert " · cancelled · 1 turn, " in bar.line, bar.line
        assert speaker.state == "cancelled"
        assert [m for m in transcript_of(daemon, "second") if m.role == agents_pb2.ROLE_USER] == [], (
            "the run stopped before its second turn"
        )


TRIM_CONFIG = """
[[models]]
name = "tiny"
n_ctx = 2048
n_seq_max = 1
n_threads = 2

[[agents]]
name = "solo"
model = "tiny"
max_tokens = 1500
"""


async def test_while_a_reply_streams_the_header_counts_its_own_prompt_not_the_history_before(
    daemon_factory: Callable[..., Daemon],
) -> None:
    daemon = daemon_factory(TRIM_CONFIG)  # a second reply of 1500 tokens no longer fits beside the first
    app = EnclaveApp(daemon.socket, spawn=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_until(pilot, lambda: app.workbench.attached)
        pane = app.workbench.panes["solo"]
        await wait_until(pilot, lambda: pane.context_size == 2048)
        await pilot.press(*"first", "enter")
        await wait_until(pilot, lambda: pane.state == "idle" and pane.reply_text != "", timeout=60)
        history = pane.context_tokens
        assert history > 1500
        await pilot.press(*"second", "enter")  # the first exchange no longer fits: it is left out
        await wait_until(pilot, lambda: pane.state == "generating" and pane._tokens > 20)
        used = int(re.search(r"ctx (\d+)/2048", pane._title()).group(1))  # type: ignore[union-attr]
        assert 0 < pane._prompt_tokens < history, "the trimmed prompt, from the daemon"
        assert used == pane._prompt_tokens + pane._tokens < history, pane._title()
        await wait_until(pilot, lambda: pane.state == "idle", timeout=60)
        assert transcript_of(daemon, "solo")[-1].dropped_messages == 2
        assert f"ctx {min(agents_of(daemon)['solo'].context_tokens, 2048)}/2048" in pane._title()


async def test_a_message_pending_when_the_daemon_is_killed_is_back_with_up(daemon_factory: Callable[..., Daemon]) -> None:
    daemon = daemon_factory(SOLO_CONFIG)
    app = EnclaveApp(daemon.socket, spawn=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.workbench.attached)
        pane = app.workbench.panes["solo"]
        prompt = app.workbench.query_one("#prompt", PromptInput)
        await pilot.press(*"a message worth keeping", "enter")
        await wait_until(pilot, lambda: pane.state == "generating")
        assert prompt.value == ""
        daemon.proc.send_signal(signal.SIGKILL)
        daemon.proc.wait()
        await wait_until(pilot, lambda: pane.state == "offline")
        await pilot.press("up")
        assert prompt.value == "a message worth keeping"


@pytest.mark.parametrize("key, dialog", [("alt+n", AgentEditor), ("alt+e", AgentEditor), ("alt+l", ConfirmScreen)])
async def test_ctrl_q_quits_from_dialogs(shared_daemon: Daemon, key: str, dialog: type) -> None:
    list(shared_daemon.stubs().chat.Chat(chat_pb2.ChatRequest(agent="a1", message="something to clear"), timeout=60))
    app = EnclaveApp(shared_daemon.socket, spawn=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_until(pilot, lambda: app.workbench.attached)
        await pilot.press(key)
        await wait_until(pilot, lambda: isinstance(app.screen, dialog))
        assert app.focused is not None and app.focused.screen is app.screen, "a field or button of the dialog has the keys"
        await pilot.press("ctrl+q")
        await wait_until(pilot, lambda: app.return_code is not None)
    assert app.return_code == 0
    assert agents_of(shared_daemon)["a1"].name == "a1", "quitting a dialog does nothing it asked about"


async def test_quit_is_in_the_palette_once(shared_daemon: Daemon) -> None:
    app = EnclaveApp(shared_daemon.socket, spawn=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_until(pilot, lambda: app.workbench.attached)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert titles.count("Quit") == 1
        assert "Maximize" not in titles, "alt+z Zoom is the workbench's own; Textual's Maximize would be a second, different one"
        duplicated = sorted({t for t in titles if titles.count(t) > 1})
        assert not duplicated, f"palette entries listed twice: {duplicated}"
        await pilot.press("ctrl+p", *"quit")
        palette = app.screen
        assert isinstance(palette, CommandPalette)
        options = palette.query_one(CommandList)
        await wait_until(pilot, lambda: options.option_count > 0)
        shown = [str(options.get_option_at_index(i).hit.match_display) for i in range(options.option_count)]  # type: ignore[attr-defined]
        assert shown.count("Quit") == 1, shown


# ---- copies inside tmux ------------------------------------------------------------------------


async def test_a_copy_that_cannot_be_handed_to_tmux_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TMUX", "/tmp/tmux-1000/default,4242,0")  # inside tmux, as far as the app can tell
    monkeypatch.setenv("PATH", str(tmp_path))  # … with no tmux command to run
    how, reached = await tmux_copy("some text") or ("", True)
    assert not reached
    assert how.startswith("but it could not be handed to tmux (the tmux command could not be run: ")
    assert "add `set -g set-clipboard on` to ~/.tmux.conf" in how and "\n" not in how
    # a tmux that runs but refuses the text
    fake = tmp_path / "tmux"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    how, reached = await tmux_copy("some text") or ("", True)
    assert not reached and how == "but tmux did not take the text; add `set -g set-clipboard on` to ~/.tmux.conf"
    monkeypatch.delenv("TMUX")
    assert await tmux_copy("some text") is None, "outside tmux, OSC 52 alone is the copy"


async def test_the_copy_notice_is_a_warning_when_tmux_cannot_be_run(
    shared_daemon: Daemon, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TMUX", "/tmp/tmux-1000/default,4242,0")
    monkeypatch.setenv("PATH", str(tmp_path))
    app = EnclaveApp(shared_daemon.socket, spawn=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_until(pilot, lambda: app.workbench.attached)
        pane = app.workbench.panes["a1"]
        before = pane.turn_id
        await pilot.press(*"something to copy", "enter")
        await wait_until(pilot, lambda: pane.turn_id != before and pane.state == "idle" and pane.reply_text != "")
        app.clear_notifications()
        await pilot.press("alt+c")
        await wait_until(pilot, lambda: any(n.message.startswith("copied") for n in app._notifications))
        [notice] = [n for n in app._notifications if n.message.startswith("copied")]
        assert notice.severity == "warning"
        assert notice.message.startswith(f"copied a1's last answer ({len(pane.reply_text)} characters), but it could not be handed to tmux")
        assert "set -g set-clipboard on" in notice.message
        assert app.clipboard == pane.reply_text, "OSC 52 went out all the same"
