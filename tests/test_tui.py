"""The workbench driven with Textual's Pilot against a real daemon (real llama.cpp, tiny model)."""

from __future__ import annotations

import asyncio
from typing import Callable

import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from enclave.app import EnclaveApp
from enclave.commands import PromptError, Send, parse_prompt
from enclave.v1 import agents_pb2, chat_pb2

from .conftest import Daemon, short_tmpdir

pytestmark = pytest.mark.timeout(120)


async def wait_until(pilot: Pilot, predicate: Callable[[], bool], timeout: float = 20) -> None:
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await pilot.pause(0.05)
    raise AssertionError("timed out waiting in the TUI")


def last_reply(daemon: Daemon, agent: str) -> str:
    messages = daemon.stubs().agents.GetTranscript(agents_pb2.GetTranscriptRequest(name=agent), timeout=10).messages
    return messages[-1].content


async def test_one_pane_per_agent_and_sending_to_the_selected_one(shared_daemon: Daemon) -> None:
    app = EnclaveApp(shared_daemon.socket)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_until(pilot, lambda: app.attached)
        assert list(app.panes) == ["a1", "a2", "a3", "a4"]
        assert app.panes["a1"].selected
        await pilot.press(*"hello", "enter")
        pane = app.panes["a1"]
        await wait_until(pilot, lambda: pane.state == "idle" and pane.reply_text != "")
        assert pane.reply_text == last_reply(shared_daemon, "a1")
        assert all(p.reply_text == "" for name, p in app.panes.items() if name != "a1")


async def test_all_sends_to_every_pane(shared_daemon: Daemon) -> None:
    app = EnclaveApp(shared_daemon.socket)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_until(pilot, lambda: app.attached)
        before = {n: p.turn_id for n, p in app.panes.items()}
        await pilot.press(*"/all status", "enter")
        await wait_until(pilot, lambda: all(p.turn_id != before[n] and p.state == "idle" for n, p in app.panes.items()))
        for name, pane in app.panes.items():
            assert pane.reply_text == last_reply(shared_daemon, name)


async def test_transcripts_are_shown_on_start_and_turns_of_other_clients_stream_in(shared_daemon: Daemon) -> None:
    stubs = shared_daemon.stubs()
    list(stubs.chat.Chat(chat_pb2.ChatRequest(agent="a2", message="before the TUI"), timeout=60))
    app = EnclaveApp(shared_daemon.socket)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_until(pilot, lambda: app.attached)
        pane = app.panes["a2"]
        await wait_until(pilot, lambda: pane.reply_text == last_reply(shared_daemon, "a2"))
        events = await asyncio.to_thread(lambda: list(stubs.chat.Chat(chat_pb2.ChatRequest(agent="a3", message="from another client"), timeout=60)))
        await wait_until(pilot, lambda: app.panes["a3"].turn_id == events[0].turn_id and app.panes["a3"].state == "idle")
        assert app.panes["a3"].reply_text == last_reply(shared_daemon, "a3")


async def test_pane_selection_keys(shared_daemon: Daemon) -> None:
    app = EnclaveApp(shared_daemon.socket)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.attached)
        await pilot.press("alt+right")
        assert app.selected_pane.agent.name == "a2"
        await pilot.press("alt+left", "alt+left")
        assert app.selected_pane.agent.name == "a4"
        await pilot.press("alt+3")
        assert app.selected_pane.agent.name == "a3"
        assert [p.selected for p in app.panes.values()] == [False, False, True, False]


async def test_no_daemon_shows_a_banner_not_a_traceback() -> None:
    app = EnclaveApp(short_tmpdir() / "none.sock")
    async with app.run_test(size=(80, 24)) as pilot:
        banner = app.query_one("#banner", Static)
        await wait_until(pilot, lambda: banner.has_class("visible"), timeout=15)
        assert "no enclaved answers at" in str(banner.render())


def test_prompt_commands() -> None:
    known = ["a", "b", "c"]
    assert parse_prompt("hi there", known) == Send("hi there", [])
    assert parse_prompt("/all  go", known) == Send("go", known)
    assert parse_prompt("/to a,c go on", known) == Send("go on", ["a", "c"])
    for bad, words in [("/all", "needs a message"), ("/to a", "needs agents"), ("/to z hi", "no agent named 'z'"), ("/x", "unknown command")]:
        with pytest.raises(PromptError, match=words):
            parse_prompt(bad, known)


async def test_layout_fits_the_terminal_and_a_pane_zooms(shared_daemon: Daemon) -> None:
    app = EnclaveApp(shared_daemon.socket)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_until(pilot, lambda: app.attached)
        await pilot.pause()
        a1, a2, a3 = (app.panes[n].region for n in ("a1", "a2", "a3"))
        assert a1.y == a2.y and a1.x < a2.x, "2x2 at 160x48: a1 and a2 side by side"
        assert a3.y > a1.y and a3.x == a1.x
        await pilot.press("alt+2", "alt+z")
        await pilot.pause()
        zoomed = app.panes["a2"].region
        assert zoomed.width > 150 and zoomed.height > 35
        assert all(app.panes[n].region.area == 0 for n in ("a1", "a3", "a4"))
        await pilot.press("alt+z")
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        a1, a2 = app.panes["a1"].region, app.panes["a2"].region
        assert a1.x == a2.x and a2.y > a1.y, "one column at 80x24"
