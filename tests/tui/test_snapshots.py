"""Pixel-exact pictures of the workbench's main layouts, at 80×24 and 160×48, and of what a pane
shows beyond the text: how a reply ended, line breaks as written, new text below a pane scrolled
up, a narrow header, the empty states and the banner while no daemon answers.

The only tests fed by a scripted token source (tests/tui/scripted_daemon.py): a picture must be the
same every run, which no sampled model gives. Accept an intended change with
``pytest tests/tui/test_snapshots.py --snapshot-update`` and look at the SVGs in __snapshots__.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from pytest_textual_snapshot import SVGImageExtension
from syrupy import SnapshotAssertion
from textual.widgets import Static

from enclave.app import EnclaveApp
from enclave.screens.agent_editor import AgentEditor
from enclave.widgets.key_footer import KeyFooter
from enclave_contract.v1 import agents_pb2, chat_pb2, models_pb2, status_pb2
from tests.helpers import wait_until
from tests.tui.scripted_daemon import ScriptedDaemon, scripted_turn

pytestmark = pytest.mark.timeout(60)

USER, ASSISTANT = agents_pb2.ROLE_USER, agents_pb2.ROLE_ASSISTANT
AGENTS = [
    agents_pb2.Agent(name="narrator", model="demo", system="You are the narrator.", context_tokens=212),
    agents_pb2.Agent(name="critic", model="demo", context_tokens=96),
    agents_pb2.Agent(name="coder", model="coder-1b", context_tokens=340),
    agents_pb2.Agent(name="poet", model="demo"),
]
TRANSCRIPTS = {
    "narrator": [
        agents_pb2.TranscriptMessage(role=agents_pb2.ROLE_SYSTEM, content="You are the narrator."),
        agents_pb2.TranscriptMessage(role=USER, content="Tell us about the river at night.", turn_id="t1"),
        agents_pb2.TranscriptMessage(
            role=ASSISTANT,
            turn_id="t1",
            content=(
                "The river runs **black and slow** under the bridge. Lanterns on the far bank "
                "draw long gold lines on the water, and somewhere a boat knocks against its mooring."
            ),
        ),
    ],
    "critic": [
        agents_pb2.TranscriptMessage(role=USER, content="What is weak in the plan?", turn_id="t2"),
        agents_pb2.TranscriptMessage(
            role=ASSISTANT,
            turn_id="t2",
            content=("Three things:\n\n1. No rollback path.\n2. The audit export is manual.\n3. Nobody owns the keys."),
        ),
    ],
    "coder": [
        agents_pb2.TranscriptMessage(role=USER, content="Sum a list in Python.", turn_id="t3"),
        agents_pb2.TranscriptMessage(
            role=ASSISTANT,
            turn_id="t3",
            content=("Use the built-in:\n\n```python\ntotal = sum(values)\n```\n\nIt takes any iterable of numbers."),
        ),
    ],
}
EVENTS = [  # the coder finished at a known speed; the poet's turn waits; one turn failed
    chat_pb2.ChatEvent(agent="poet", turn_id="t4", started=chat_pb2.TurnStarted(model="demo", user_message="A verse, please.")),
    chat_pb2.ChatEvent(agent="critic", turn_id="t5", started=chat_pb2.TurnStarted(model="demo", user_message="And the budget?")),
    chat_pb2.ChatEvent(
        agent="critic",
        turn_id="t5",
        error=chat_pb2.TurnError(code=9, message="model 'demo' failed to load: out of memory; free memory or lower n_ctx"),
    ),
]
MODELS = [models_pb2.Model(name=n, state=models_pb2.MODEL_STATE_LOADED) for n in ("coder-1b", "demo")]
STATUS = status_pb2.StatusSnapshot(
    version="0.1.0",
    uptime_seconds=3600,
    agents=4,
    active_turns=1,
    memory_budget_bytes=8 << 30,
    models=[
        status_pb2.ModelStatus(
            name="coder-1b",
            state=models_pb2.MODEL_STATE_LOADED,
            memory_bytes=905 << 20,
            size_bytes=669 << 20,
            quantization="Q4_K_M",
            context_size=4096,
            sequence_slots=4,
            active_sequences=0,
            decode_tokens_per_second=0.0,
            tokens_generated=1234,
        ),
        status_pb2.ModelStatus(
            name="demo",
            state=models_pb2.MODEL_STATE_LOADED,
            memory_bytes=14 << 20,
            size_bytes=9 << 20,
            quantization="F16",
            context_size=2048,
            sequence_slots=4,
            active_sequences=1,
            queued_requests=1,
            decode_tokens_per_second=412.5,
            prompt_tokens_per_second=2310.0,
            tokens_generated=98765,
            state_cache_entries=2,
            state_cache_bytes=48 << 20,
            state_cache_budget_bytes=256 << 20,
        ),
        status_pb2.ModelStatus(
            name="big-70b",
            state=models_pb2.MODEL_STATE_AVAILABLE,
            size_bytes=40 << 30,
            quantization="Q4_K_M",
            context_size=8192,
            sequence_slots=4,
        ),
    ],
)


@asynccontextmanager
async def serving(**script: Any) -> AsyncIterator[ScriptedDaemon]:
    """A scripted daemon on a fresh short socket path, for one test."""
    folder = Path(tempfile.mkdtemp(prefix="snap-", dir="/tmp"))
    daemon = ScriptedDaemon(folder / "s.sock", **script)
    await daemon.start()
    try:
        yield daemon
    finally:
        await daemon.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
async def scripted() -> AsyncIterator[ScriptedDaemon]:
    async with serving(agents=AGENTS, transcripts=TRANSCRIPTS, models=MODELS, status=STATUS, events=EVENTS) as daemon:
        yield daemon


@pytest.fixture
def svg(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.use_extension(SVGImageExtension)


async def picture(
    daemon: ScriptedDaemon,
    size: tuple[int, int],
    keys: tuple[str, ...] = (),
    shown: Callable[[EnclaveApp], bool] = lambda app: True,
) -> str:
    """The picture after ``keys``, once ``shown`` holds (a screen that opens after a call to
    the daemon is not there at a fixed time)."""
    app = EnclaveApp(daemon.socket, spawn=False)
    async with app.run_test(size=size) as pilot:
        await wait_until(
            pilot,
            lambda: (
                app.workbench.attached and app.workbench.panes["critic"].state == "error" and app.workbench.panes["poet"].state == "queued"
            ),
        )
        await wait_until(pilot, lambda: app.workbench.panes["coder"].context_size == 4096)
        await pilot.press(*keys)
        await wait_until(pilot, lambda: shown(app))
        await pilot.pause(0.3)
        return app.export_screenshot()


@pytest.mark.parametrize("size", [(160, 48), (80, 24)], ids=["160x48", "80x24"])
async def test_workbench(scripted: ScriptedDaemon, svg: SnapshotAssertion, size: tuple[int, int]) -> None:
    assert svg == await picture(scripted, size)


@pytest.mark.parametrize("size", [(160, 48), (80, 24)], ids=["160x48", "80x24"])
async def test_models_panel(scripted: ScriptedDaemon, svg: SnapshotAssertion, size: tuple[int, int]) -> None:
    assert svg == await picture(scripted, size, ("alt+m",))


async def test_zoomed_pane(scripted: ScriptedDaemon, svg: SnapshotAssertion) -> None:
    assert svg == await picture(scripted, (80, 24), ("alt+3", "alt+z"))


async def test_agent_editor(scripted: ScriptedDaemon, svg: SnapshotAssertion) -> None:
    opened = await picture(
        scripted, (80, 24), ("alt+3", "alt+e"), lambda app: isinstance(app.screen, AgentEditor) and app.screen.focused is not None
    )
    assert svg == opened


async def test_footer_keys_are_shown_whole(scripted: ScriptedDaemon) -> None:
    """At any width the footer shows its keys in order while they fit whole beside the palette
    key, and leaves the rest out (Textual's own footer cut them mid-word at 80 columns)."""
    app = EnclaveApp(scripted.socket, spawn=False)
    async with app.run_test(size=(160, 24)) as pilot:
        await wait_until(pilot, lambda: app.workbench.attached)
        footer = app.workbench.query_one(KeyFooter)
        counts = []
        for width in (160, 141, 120, 107, 93, 80, 60, 160):
            await pilot.resize_terminal(width, 24)
            await pilot.pause(0.2)
            keys = list(footer.query_children("FooterKey"))
            palette = next(k for k in keys if k.has_class("-command-palette"))
            others = [k for k in keys if k is not palette]
            shown = [k for k in others if k.display]
            assert others[: len(shown)] == shown, "the keys shown are the first ones"
            assert all(k.region.right <= palette.region.x for k in shown), f"a key is cut at {width} columns"
            if len(shown) < len(others):
                room = palette.region.x - (shown[-1].region.right if shown else footer.region.x)
                assert others[len(shown)].render().cell_len > room, f"a key that fits is left out at {width} columns"  # type: ignore[union-attr]
            counts.append(len(shown))
        assert counts[0] == counts[-1] > counts[5] > 0, counts


# ---- what a pane shows beyond the text -----------------------------------------------------------


async def shot(
    daemon: ScriptedDaemon,
    size: tuple[int, int],
    ready: Callable[[EnclaveApp], bool],
    keys: tuple[str, ...] = (),
) -> str:
    """The picture once the workbench is attached, every pane has its context size from the
    status stream (if its model has one) and ``ready`` holds, after ``keys``."""
    app = EnclaveApp(daemon.socket, spawn=False)
    async with app.run_test(size=size) as pilot:
        bench = app.workbench
        sizes = {m.name: m.context_size for m in daemon.status.models}
        await wait_until(
            pilot,
            lambda: (
                bench.attached
                and bench.status is not None
                and all(p.context_size == sizes.get(p.agent.model, 0) for p in bench.panes.values())
                and ready(app)
            ),
        )
        await pilot.press(*keys)
        await pilot.pause(0.3)
        return app.export_screenshot()


def demo_status(*models: tuple[str, int]) -> status_pb2.StatusSnapshot:
    """A status snapshot with these loaded models, (name, context per sequence)."""
    listed = [status_pb2.ModelStatus(name=n, state=models_pb2.MODEL_STATE_LOADED, context_size=c, sequence_slots=4) for n, c in models]
    return status_pb2.StatusSnapshot(version="0.1.0", memory_budget_bytes=8 << 30, models=listed)


def idle_with_reply(*names: str) -> Callable[[EnclaveApp], bool]:
    return lambda app: all(app.workbench.panes[n].state in ("idle", "cancelled") and app.workbench.panes[n].reply_text for n in names)


ENDING_AGENTS = [
    agents_pb2.Agent(name="saga", model="demo"),
    agents_pb2.Agent(name="planner", model="demo"),
    agents_pb2.Agent(name="summarizer", model="demo"),
    agents_pb2.Agent(name="historian", model="demo", context_tokens=1900),
]
ENDING_TRANSCRIPTS = {
    "historian": [
        agents_pb2.TranscriptMessage(role=USER, content="When did the war begin?", turn_id="h1"),
        agents_pb2.TranscriptMessage(role=ASSISTANT, content="In 1618, with the defenestration of Prague.", turn_id="h1"),
        agents_pb2.TranscriptMessage(role=USER, content="Who fought in it?", turn_id="h2"),
        agents_pb2.TranscriptMessage(role=ASSISTANT, content="Most of the powers of Europe, at one time or another.", turn_id="h2"),
    ],
}
ENDING_EVENTS = [
    *scripted_turn(
        "saga",
        "e1",
        "Tell the whole saga.",
        "Long ago, in a valley between two rivers, there lived a clockmaker who kept every clock in the town a minute fast, so that",
        finish_reason=chat_pb2.FINISH_REASON_MAX_TOKENS,
        tokens_per_second=52.0,
    ),
    *scripted_turn(
        "planner",
        "e2",
        "Plan the database migration.",
        "First, freeze writes to the old cluster and take a full backup. Then",
        finish_reason=chat_pb2.FINISH_REASON_CANCELLED,
        tokens_per_second=48.0,
    ),
    *scripted_turn(
        "summarizer",
        "e3",
        "Summarize the whole log again.",
        "The log shows three restarts, each one after a burst of writes from the",
        finish_reason=chat_pb2.FINISH_REASON_CONTEXT_FULL,
        prompt_tokens=2034,
        tokens_per_second=45.0,
    ),
    *scripted_turn(
        "historian",
        "e4",
        "And when did it end?",
        "In 1648, with the Peace of Westphalia.",
        dropped_messages=2,
        prompt_tokens=1930,
        tokens_per_second=50.0,
    ),
]


async def test_reply_endings(svg: SnapshotAssertion) -> None:
    """Cut at max_tokens, cancelled, stopped by a full context: a marker under the reply; a
    history trimmed to fit: a marker above it."""
    script = dict(agents=ENDING_AGENTS, transcripts=ENDING_TRANSCRIPTS, status=demo_status(("demo", 2048)), events=ENDING_EVENTS)
    async with serving(**script) as daemon:
        assert svg == await shot(daemon, (160, 48), idle_with_reply("saga", "planner", "summarizer", "historian"))


VERSE = "The kettle sings at half past five,\nthe window fogs, the street's alive;\na cat walks slowly through the rain,\nand morning starts its work again."
COMMANDS = "Run these, one at a time:\n\ncd /srv/app\ngit pull --ff-only\nmake test\nsudo systemctl restart app"


async def test_line_breaks_as_written(svg: SnapshotAssertion) -> None:
    """Verse (from the transcript) and shell commands (streamed live), one line each, as written."""
    transcripts = {
        "poet": [
            agents_pb2.TranscriptMessage(role=USER, content="A short verse, please.", turn_id="v1"),
            agents_pb2.TranscriptMessage(role=ASSISTANT, content=VERSE, turn_id="v1", finish_reason="end_of_turn"),
        ]
    }
    events = scripted_turn("poet", "v2", "How do I deploy the app?", COMMANDS, prompt_tokens=80, tokens_per_second=61.0)
    script = dict(agents=[agents_pb2.Agent(name="poet", model="demo")], transcripts=transcripts, status=demo_status(("demo", 2048)))
    async with serving(**script, events=events) as daemon:
        assert svg == await shot(daemon, (80, 24), lambda app: app.workbench.panes["poet"].reply_text == COMMANDS)


async def test_new_text_below(svg: SnapshotAssertion) -> None:
    """A pane scrolled up (PageUp) while a new reply arrives stays where it is and says so."""
    messages = []
    for i, (question, answer) in enumerate(
        [
            ("Where does the river start?", "High in the hills, in a bog of moss and stones, where three springs meet."),
            ("And where does it go?", "South through the valley, past the mill and under the old stone bridge, to the sea."),
            ("Who lives along it?", "Millers, fishers, a ferryman, and the herons that stand in the shallows at dawn."),
            ("Is it ever dry?", "Only once in living memory, in the summer the mill wheel stopped for a month."),
        ],
        start=1,
    ):
        messages += [
            agents_pb2.TranscriptMessage(role=USER, content=question, turn_id=f"r{i}"),
            agents_pb2.TranscriptMessage(role=ASSISTANT, content=answer, turn_id=f"r{i}"),
        ]
    agents = [agents_pb2.Agent(name="narrator", model="demo", context_tokens=310)]
    async with serving(agents=agents, transcripts={"narrator": messages}, status=demo_status(("demo", 2048)), events=[]) as daemon:
        app = EnclaveApp(daemon.socket, spawn=False)
        async with app.run_test(size=(80, 24)) as pilot:
            bench = app.workbench
            await wait_until(pilot, lambda: bench.attached and "narrator" in bench.panes and bench.panes["narrator"].context_size == 2048)
            pane = bench.panes["narrator"]
            # PageUp scrolls only once the layout shows the scrollbar (the content is taller)
            await wait_until(pilot, lambda: pane.body.show_vertical_scrollbar and pane.body.is_vertical_scroll_end)
            await pilot.press("pageup")
            await wait_until(pilot, lambda: not pane.body.is_vertical_scroll_end and daemon.watches == 1)
            daemon.push_events(
                scripted_turn(
                    "narrator",
                    "r5",
                    "What is the bridge made of?",
                    "Grey granite, cut from the quarry above the town, and mortared with lime.",
                    prompt_tokens=330,
                    tokens_per_second=57.0,
                )
            )
            await wait_until(pilot, lambda: pane.state == "idle" and pane.reply_text.startswith("Grey granite") and pane.new_below)
            await pilot.pause(0.3)
            assert not pane.body.is_vertical_scroll_end, "a person reading above is not pulled down"
            assert svg == app.export_screenshot()


HEADER_AGENTS = [
    agents_pb2.Agent(name="reviewer", model="smollm2-135m-instruct"),
    agents_pb2.Agent(name="translator", model="gemma-3-270m-it", damage="2 rows could not be read"),
    agents_pb2.Agent(name="assistant", model="llama-3.1-70b@gpu", fallbacks=["smollm2-135m-instruct"]),
]
HEADER_EVENTS = [
    *scripted_turn("reviewer", "n1", "Review the patch.", "It looks right; add a test for the empty list.", prompt_tokens=1222),
    *scripted_turn("translator", "n2", "In French: good morning.", "Bonjour.", prompt_tokens=1876, tokens_per_second=131.0),
    chat_pb2.ChatEvent(agent="assistant", turn_id="n3", started=chat_pb2.TurnStarted(model="llama-3.1-70b@gpu", user_message="Hello?")),
    chat_pb2.ChatEvent(
        agent="assistant",
        turn_id="n3",
        served=chat_pb2.ModelServed(model="smollm2-135m-instruct", reason="llama-3.1-70b@gpu: circuit open"),
    ),
    *scripted_turn("assistant", "n3", "Hello?", "Hello! How can I help?", prompt_tokens=5120, tokens_per_second=96.0)[1:],
]


@pytest.mark.parametrize("size", [(120, 30), (160, 30)], ids=["120x30", "160x30"])
async def test_narrow_header(svg: SnapshotAssertion, size: tuple[int, int]) -> None:
    """Three panes: where a header does not fit, whole parts are left out, never half a number."""
    status = demo_status(("smollm2-135m-instruct", 2048), ("gemma-3-270m-it", 32768), ("llama-3.1-70b@gpu", 131072))
    async with serving(agents=HEADER_AGENTS, status=status, events=HEADER_EVENTS) as daemon:
        assert svg == await shot(daemon, size, idle_with_reply("reviewer", "translator", "assistant"))


def empty_hint(app: EnclaveApp) -> str:
    hint = app.workbench.query_one("#empty", Static)
    return str(hint.render()) if hint.display else ""


async def test_empty_no_models(svg: SnapshotAssertion) -> None:
    """A daemon with no models: the hint says how to add one."""
    async with serving(status=demo_status(), events=[]) as daemon:
        assert svg == await shot(daemon, (80, 24), lambda app: "No models yet" in empty_hint(app))


async def test_empty_no_agents(svg: SnapshotAssertion) -> None:
    """Models but no agents: the hint says how to make one."""
    async with serving(models=MODELS, status=demo_status(("coder-1b", 4096), ("demo", 2048)), events=[]) as daemon:
        assert svg == await shot(daemon, (80, 24), lambda app: "No agents yet" in empty_hint(app))


NO_DAEMON = Path("/nonexistent/enclaved.sock")  # fixed and short: it is in the picture


async def test_connecting_banner(svg: SnapshotAssertion) -> None:
    """--no-spawn and no daemon: the banner says at once where the workbench is connecting
    (it waits up to CONNECT_TIMEOUT for an answer before it says none came)."""
    assert not NO_DAEMON.parent.exists()
    app = EnclaveApp(NO_DAEMON, spawn=False)
    async with app.run_test(size=(80, 24)) as pilot:
        banner = app.workbench.query_one("#banner", Static)
        await wait_until(pilot, lambda: banner.has_class("visible"))
        await pilot.pause(0.3)
        picture = app.export_screenshot()
        assert str(banner.render()) == f"connecting to enclaved on {NO_DAEMON} …", "still connecting when the picture was taken"
    assert svg == picture
