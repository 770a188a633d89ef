"""Pixel-exact pictures of the workbench's main layouts, at 80×24 and 160×48.

The only tests fed by a scripted token source (tests/tui/scripted_daemon.py): a picture must be the
same every run, which no sampled model gives. Accept an intended change with
``pytest tests/tui/test_snapshots.py --snapshot-update`` and look at the SVGs in __snapshots__.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pytest_textual_snapshot import SVGImageExtension
from syrupy import SnapshotAssertion

from enclave.app import EnclaveApp
from enclave_contract.v1 import agents_pb2, chat_pb2, models_pb2, status_pb2
from tests.helpers import wait_until
from tests.tui.scripted_daemon import ScriptedDaemon

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


@pytest.fixture
async def scripted() -> AsyncIterator[ScriptedDaemon]:
    folder = Path(tempfile.mkdtemp(prefix="snap-", dir="/tmp"))
    daemon = ScriptedDaemon(folder / "s.sock", agents=AGENTS, transcripts=TRANSCRIPTS, models=MODELS, status=STATUS, events=EVENTS)
    await daemon.start()
    yield daemon
    await daemon.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def svg(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.use_extension(SVGImageExtension)


async def picture(daemon: ScriptedDaemon, size: tuple[int, int], keys: tuple[str, ...] = ()) -> str:
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
    assert svg == await picture(scripted, (80, 24), ("alt+3", "alt+e"))
