"""What a pane shows beyond the text: line breaks as written, how a reply ended, scrolling from
the prompt, honest rates and context, and what to do when there is nothing to talk to."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from textual import events
from textual.app import App, ComposeResult
from textual.widgets import Static

from enclave.app import EnclaveApp
from enclave.messages import TurnDelta, TurnFinished, TurnServed, TurnStarted, TurnTrimmed
from enclave.views import AgentView, ChatMessage
from enclave.widgets.agent_pane import ENDINGS, AgentPane
from enclave.widgets.prompt import PromptInput
from enclave_contract.v1 import agents_pb2, chat_pb2
from tests.helpers import Daemon, enclave, short_tmpdir, start_daemon, wait_until

pytestmark = pytest.mark.timeout(120)


class Host(App[None]):
    def __init__(self, *widgets: object) -> None:
        super().__init__()
        self.widgets = widgets

    def compose(self) -> ComposeResult:
        yield from self.widgets  # type: ignore[misc]


def texts(pane: AgentPane, kind: str) -> list[str]:
    """The text of each whole message of ``kind``."""
    return [e.text for e in pane.body.entries if e.kind == kind]


async def test_line_breaks_are_shown_as_written_and_endings_are_marked() -> None:
    pane = AgentPane(AgentView(name="m", model="tiny"), 1)
    async with Host(pane).run_test(size=(80, 30)) as pilot:
        verse = "roses are red\n  violets are blue\n    sugar is sweet"
        pane.show_transcript(
            [
                ChatMessage("user", "a poem"),
                ChatMessage("assistant", verse, finish_reason="max_tokens"),
                ChatMessage("user", "another"),
                ChatMessage("assistant", "done.", finish_reason="end_of_turn"),
                ChatMessage("user", "a third"),
                ChatMessage("assistant", "half", finish_reason="cancelled"),
            ]
        )
        await pilot.pause()
        drawn = [line.replace("\u00a0", " ") for line in pane.body.plain_lines()]
        first = drawn.index("roses are red")
        assert drawn[first : first + 3] == verse.splitlines(), "three lines, each with its indent, not one joined line"
        assert texts(pane, "marker") == [f"— {ENDINGS['max_tokens']}", f"— {ENDINGS['cancelled']}"]


async def test_a_trimmed_history_is_marked_above_the_reply_and_a_late_join_has_no_false_rate() -> None:
    pane = AgentPane(AgentView(name="m", model="tiny"), 1)
    async with Host(pane).run_test(size=(80, 30)) as pilot:
        pane.handle(TurnStarted("m", "t", user_message="q"))
        pane.handle(TurnTrimmed("m", "t", dropped_messages=2))
        await pilot.pause()
        assert texts(pane, "marker") == ["— 2 oldest messages left out to fit the context"]
        # a pane that joins a turn in progress gets its text so far as one delta: 200 tokens
        # at once are not a rate of thousands a second
        pane.handle(TurnDelta("m", "t", "so far " * 200, tokens=200))
        pane.flush()
        assert pane.tokens_per_second == 0.0
        lines = pane.body.plain_lines()
        reply = next(i for i, line in enumerate(lines) if line.startswith("so far"))
        assert lines.index("▌ q") < lines.index("— 2 oldest messages left out to fit the context") < reply


async def test_whole_blocks_stream_as_markdown_and_the_block_being_written_as_plain_text() -> None:
    pane = AgentPane(AgentView(name="m", model="tiny"), 1)
    async with Host(pane).run_test(size=(80, 30)) as pilot:
        pane.handle(TurnStarted("m", "t", user_message="q"))
        for piece in ("First **para**", "graph.\n\n```\ncode\n\nmore", " code\n```\n\nThe last one is being wr"):
            pane.handle(TurnDelta("m", "t", piece, tokens=1))
            pane.flush()
        assert pane.body.reply_tail == "The last one is being wr"
        assert pane.body.reply_blocks == ["First **para**graph.\n\n", "```\ncode\n\nmore code\n```\n\n"], (
            "the paragraph and the whole fence (blank line inside it) are Markdown"
        )
        lines = pane.body.plain_lines()
        assert "First paragraph." in lines and lines[-2:] == ["The last one is being wr", ""]
        pane.handle(TurnFinished("m", "t", finish_reason="end_of_turn", context_tokens=0, tokens_per_second=0.0))
        await pilot.pause()
        assert not pane.body.reply_tail
        assert texts(pane, "reply") == ["First **para**graph.\n\n```\ncode\n\nmore code\n```\n\nThe last one is being wr"]
        assert "First paragraph." in pane.body.plain_lines() and "The last one is being wr" in pane.body.plain_lines()


async def test_the_header_leaves_out_whole_parts_when_narrow() -> None:
    agent = AgentView(name="reviewer", model="smollm2-135m-instruct", damage="a row is missing")
    pane = AgentPane(agent, 3)
    async with Host(pane).run_test(size=(80, 30)):
        pane.tokens_per_second, pane.context_tokens, pane.context_size = 48.0, 1234, 2048
        whole = pane._title(0)
        assert whole == "3  reviewer · smollm2-135m-instruct · idle · 48 tok/s · ctx 1234/2048 · transcript damaged"
        for width in (70, 50, 40, 30, 20):
            title = pane._title(width)
            assert len(title) <= width or title == "3  reviewer"
            assert set(title.split(" · ")) <= set(whole.split(" · ")), "no part is cut in the middle"
            assert title.startswith("3  reviewer · idle") or title.startswith("3  reviewer · smollm2")
        assert pane._title(40) == "3  reviewer · idle · transcript damaged"
        # a less telling part that still fits stays where a more telling one did not fit
        assert pane._title(50) == "3  reviewer · idle · 48 tok/s · transcript damaged"


async def test_prompt_history_walks_back_and_returns_to_the_draft() -> None:
    prompt = PromptInput(id="p")
    async with Host(prompt).run_test() as pilot:
        prompt.remember("first")
        prompt.remember("second")
        prompt.value = "draft"
        await pilot.press("up")
        assert prompt.value == "second"
        await pilot.press("up", "up")
        assert prompt.value == "first"
        await pilot.press("down", "down")
        assert prompt.value == "draft"


def test_alt_digit_right_before_a_paste_is_still_alt_digit() -> None:
    """tmux sends ESC 2 and a bracketed paste in one read when they follow at once."""
    from textual._xterm_parser import XTermParser

    from enclave.terminal import read_alt_digits

    read_alt_digits()
    parsed = list(XTermParser(debug=False).feed("\x1b2\x1b[200~one\ntwo\x1b[201~"))
    assert [e.key for e in parsed if isinstance(e, events.Key)] == ["alt+2"]
    assert [e.text for e in parsed if isinstance(e, events.Paste)] == ["one\ntwo"]


# ---- against the real daemon -------------------------------------------------------------------

CUT_CONFIG = """
[[agents]]
name = "cut"
model = "tiny"
max_tokens = 6
seed = 7
"""


async def test_a_reply_cut_at_max_tokens_is_marked_and_the_context_survives_a_restart(daemon_factory: Callable[..., Daemon]) -> None:
    home = short_tmpdir()
    daemon = daemon_factory(CUT_CONFIG, home=home)
    app = EnclaveApp(daemon.socket, spawn=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.workbench.attached)
        pane = app.workbench.panes["cut"]
        await pilot.press(*"go on and on", "enter")
        await wait_until(pilot, lambda: pane.state == "idle" and pane.reply_text != "")
        finished = daemon.stubs().agents.GetTranscript(agents_pb2.GetTranscriptRequest(name="cut"), timeout=10).messages[-1]
        assert finished.finish_reason == "max_tokens"
        await wait_until(pilot, lambda: texts(pane, "marker") == [f"— {ENDINGS['max_tokens']}"])
        used = pane.context_tokens
        assert used > 0
        await pilot.press("up")  # what was sent comes back, e.g. after the daemon lost it
        assert app.workbench.query_one("#prompt", PromptInput).value == "go on and on"
    assert daemon.stop() == 0
    restarted = await asyncio.to_thread(daemon_factory, CUT_CONFIG, home=home)
    listed = {a.name: a for a in restarted.stubs().agents.ListAgents(agents_pb2.ListAgentsRequest(), timeout=10).agents}
    assert listed["cut"].context_tokens == used, "how full the context is, kept across a restart"
    app = EnclaveApp(restarted.socket, spawn=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.workbench.attached)
        pane = app.workbench.panes["cut"]
        await wait_until(pilot, lambda: f"ctx {used}/" in pane._title(0))
        assert texts(pane, "marker") == [f"— {ENDINGS['max_tokens']}"], "the marker comes back with the transcript"


# a 256-token context (llama.cpp's least), a quarter of it kept for the reply: after one reply
# of 200 tokens the next prompt has no room for the first exchange
TRIM_CONFIG = """
[[models]]
name = "tiny"
n_ctx = 256
n_seq_max = 1
n_threads = 1

[[agents]]
name = "trim"
model = "tiny"
max_tokens = 200
seed = 7
"""

TRIMMED = "— 2 oldest messages left out to fit the context"


async def test_a_trimmed_history_is_marked_live_and_again_after_the_app_and_the_daemon_restart(
    daemon_factory: Callable[..., Daemon],
) -> None:
    home = short_tmpdir()
    daemon = daemon_factory(TRIM_CONFIG, home=home)
    app = EnclaveApp(daemon.socket, spawn=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.workbench.attached)
        pane = app.workbench.panes["trim"]
        for message in ("tell me everything", "and then"):
            await pilot.press(*message, "enter")
            await wait_until(pilot, lambda message=message: pane.state == "idle" and texts(pane, "user")[-1:] == [message])  # type: ignore[misc]
            await wait_until(pilot, lambda: len(texts(pane, "reply")) == len(texts(pane, "user")))
        live = [(e.kind, e.text) for e in pane.body.entries]
    stored = daemon.stubs().agents.GetTranscript(agents_pb2.GetTranscriptRequest(name="trim"), timeout=10).messages
    assert [(m.role, m.dropped_messages) for m in stored] == [
        (agents_pb2.ROLE_USER, 0),
        (agents_pb2.ROLE_ASSISTANT, 0),
        (agents_pb2.ROLE_USER, 0),
        (agents_pb2.ROLE_ASSISTANT, 2),
    ], "the second prompt left the first exchange out, and its reply says so"
    cut = f"— {ENDINGS['max_tokens']}"
    assert [(kind, text if kind == "marker" else "") for kind, text in live] == [
        ("user", ""),
        ("reply", ""),
        ("marker", cut),
        ("user", ""),
        ("marker", TRIMMED),  # above the reply whose prompt left them out, as live
        ("reply", ""),
        ("marker", cut),
    ]
    lines = [json.loads(line) for line in enclave(daemon, "transcript", "trim", "--json").stdout.splitlines()]
    assert [m["dropped_messages"] for m in lines] == [None, 0, None, 2]

    async def shown_again(socket: Path) -> None:
        app = EnclaveApp(socket, spawn=False)
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_until(pilot, lambda: app.workbench.attached)
            pane = app.workbench.panes["trim"]
            assert [(e.kind, e.text) for e in pane.body.entries] == live, "the transcript reads as it was shown live"

    await shown_again(daemon.socket)
    assert daemon.stop() == 0
    restarted = await asyncio.to_thread(daemon_factory, TRIM_CONFIG, home=home)
    await shown_again(restarted.socket)


LONG_CONFIG = """
[[models]]
name = "tiny"
n_ctx = %d
n_seq_max = 1
n_threads = 1

[[agents]]
name = "long"
model = "tiny"
max_tokens = 3000
seed = 7
"""


async def test_a_cancelled_reply_is_marked_live_and_after_the_app_restarts(daemon_factory: Callable[..., Daemon]) -> None:
    daemon = daemon_factory(LONG_CONFIG % 4096)  # a reply of up to 3000 tokens: it outlasts the key
    app = EnclaveApp(daemon.socket, spawn=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.workbench.attached)
        pane = app.workbench.panes["long"]
        await pilot.press(*"a long story", "enter")
        await wait_until(pilot, lambda: pane.state == "generating" and pane.reply_text != "")
        await pilot.press("escape")
        await wait_until(pilot, lambda: pane.state == "cancelled")
        assert texts(pane, "marker") == [f"— {ENDINGS['cancelled']}"]
        live = [(e.kind, e.text) for e in pane.body.entries]
    stored = daemon.stubs().agents.GetTranscript(agents_pb2.GetTranscriptRequest(name="long"), timeout=10).messages[-1]
    assert stored.finish_reason == "cancelled" and stored.content
    app = EnclaveApp(daemon.socket, spawn=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.workbench.attached)
        assert [(e.kind, e.text) for e in app.workbench.panes["long"].body.entries] == live


async def test_a_reply_that_fills_the_context_is_marked_live_and_after_the_app_restarts(daemon_factory: Callable[..., Daemon]) -> None:
    daemon = daemon_factory(LONG_CONFIG % 256)  # 3000 tokens asked for, 256 in the context
    app = EnclaveApp(daemon.socket, spawn=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.workbench.attached)
        pane = app.workbench.panes["long"]
        await pilot.press(*"fill it up", "enter")
        await wait_until(pilot, lambda: pane.state == "idle" and pane.reply_text != "")
        await wait_until(pilot, lambda: texts(pane, "marker") == [f"— {ENDINGS['context_full']}"])
        await wait_until(pilot, lambda: "ctx 256/256" in pane._title(0))  # no more than the context holds
        assert pane.context_tokens >= 256, "the reply ran to the end of the context"
        live = [(e.kind, e.text) for e in pane.body.entries]
    stored = daemon.stubs().agents.GetTranscript(agents_pb2.GetTranscriptRequest(name="long"), timeout=10).messages[-1]
    assert stored.finish_reason == "context_full"
    app = EnclaveApp(daemon.socket, spawn=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.workbench.attached)
        assert [(e.kind, e.text) for e in app.workbench.panes["long"].body.entries] == live


async def test_page_keys_scroll_the_selected_pane_and_new_text_below_is_flagged(shared_daemon: Daemon) -> None:
    stubs = shared_daemon.stubs()
    for i in range(4):
        list(stubs.chat.Chat(chat_pb2.ChatRequest(agent="a4", message=f"fill the pane {i}"), timeout=60))
    app = EnclaveApp(shared_daemon.socket, spawn=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: app.workbench.attached)
        await pilot.press("alt+4")
        pane = app.workbench.panes["a4"]
        await wait_until(pilot, lambda: pane.body.max_scroll_y > 0)
        await pilot.pause(0.2)
        assert pane.body.is_vertical_scroll_end
        await pilot.press("pageup")
        await wait_until(pilot, lambda: not pane.body.is_vertical_scroll_end)
        assert app.workbench.query_one("#prompt", PromptInput).has_focus, "the prompt keeps the focus"
        await pilot.press(*"more please", "enter")
        await wait_until(pilot, lambda: pane.state == "idle" and pane.reply_text != "" and pane.new_below)
        assert "↓ new text below" in pane._title(0)
        assert not pane.body.is_vertical_scroll_end, "a person reading above is not pulled down"
        await pilot.press("ctrl+end")
        await wait_until(pilot, lambda: pane.body.is_vertical_scroll_end and not pane.new_below)
        await pilot.press("ctrl+home")
        await wait_until(pilot, lambda: pane.body.scroll_y == 0)


async def test_a_daemon_without_models_says_how_to_add_one() -> None:
    home = short_tmpdir()
    (home / "models").mkdir()
    daemon = await asyncio.to_thread(start_daemon, home, home / "models")
    app = EnclaveApp(daemon.socket, spawn=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: app.workbench.attached and app.workbench.status is not None)
        hint = app.workbench.query_one("#empty", Static)
        await wait_until(pilot, lambda: "No models yet" in str(hint.render()))
        assert hint.display and "enclave make-model" in str(hint.render())
        await pilot.press(*"hello", "enter")
        await pilot.pause()
        assert any("No models yet" in n.message for n in app._notifications), "Enter says why nothing happens"
    assert daemon.stop() == 0


async def test_a_turn_served_by_another_model_says_so_in_the_header_and_above_the_reply() -> None:
    from enclave.convert import watch_event

    event = watch_event(
        chat_pb2.ChatEvent(
            agent="m", turn_id="t", served=chat_pb2.ModelServed(model="smollm2", engine="", reason="llama-3.1-70b@gpu: circuit open")
        )
    )
    assert isinstance(event, TurnServed) and event.model == "smollm2"
    pane = AgentPane(AgentView(name="m", model="llama-3.1-70b@gpu"), 1)
    async with Host(pane).run_test(size=(120, 30)) as pilot:
        pane.handle(TurnStarted("m", "t", user_message="q"))
        pane.handle(event)
        await pilot.pause()
        assert "smollm2 for llama-3.1-70b@gpu" in pane._title(0)
        assert texts(pane, "marker") == ["— answered by smollm2: llama-3.1-70b@gpu: circuit open"]
        assert [e.kind for e in pane.body.entries] == ["user", "marker"] and pane.body.reply_tail == "", "the marker is above the reply"
        pane.handle(TurnStarted("m", "t2", user_message="again"))
        assert "smollm2" not in pane._title(0), "the next turn starts on the agent's own model"
