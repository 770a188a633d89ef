"""Crash safety: a writer killed with SIGKILL under load loses nothing it acknowledged, and
the log it leaves verifies and opens again."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from enclaved.audit import AuditLog, verify

CHILD = r"""
import asyncio, os, sys
from pathlib import Path
from enclaved.audit import Actor, AuditConfig, AuditLog, Entry

async def main() -> None:
    log = await AuditLog.open(Path(sys.argv[1]), config=AuditConfig(checkpoint_interval=0.02, seal_interval=0.005))
    actor = Actor.this_process()
    stored = {a: t.next_position for a, t in (await log.conversations.load_transcripts()).items()}
    os.write(1, b"open\n")

    async def worker(w: int) -> None:
        i = 0
        while True:
            seq = await log.append(Entry("chat.completion", agent=f"a{w}", turn=str(i), text={"completion": "x" * 300}), actor)
            os.write(1, f"r {seq}\n".encode())
            if i % 4 == 0:
                await log.conversations.save_message(f"a{w}", stored.get(f"a{w}", 0) + i // 4, "user", f"m{i}", str(i))
                os.write(1, f"m a{w} m{i}\n".encode())
            i += 1

    await asyncio.gather(*(worker(w) for w in range(16)))

asyncio.run(main())
"""


def _run_and_kill(script: Path, data: Path, after_acks: int, delay: float) -> tuple[set[int], set[tuple[str, str]]]:
    """Start the writer, SIGKILL it once it acknowledged ``after_acks`` appends (then waited
    ``delay`` s), and collect every acknowledgement it got out before dying."""
    child = subprocess.Popen([sys.executable, str(script), str(data)], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    acks, messages = set(), set()
    try:
        assert child.stdout.readline() == "open\n"
        while len(acks) < after_acks:
            line = child.stdout.readline()
            assert line, "the writer died on its own"
            kind, *rest = line.split()
            if kind == "r":
                acks.add(int(rest[0]))
            else:
                messages.add((rest[0], rest[1]))
        time.sleep(delay)
    finally:
        os.kill(child.pid, signal.SIGKILL)
    for line in child.stdout:  # what it wrote to the pipe before the kill still counts
        kind, *rest = line.split()
        if kind == "r":
            acks.add(int(rest[0]))
        elif kind == "m" and len(rest) == 2:
            messages.add((rest[0], rest[1]))
    child.wait()
    assert child.returncode == -signal.SIGKILL
    return acks, messages


@pytest.mark.timeout(120)
async def test_sigkill_under_load_loses_no_acknowledged_append(tmp_path: Path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(CHILD)
    data = tmp_path / "data"
    all_acks: set[int] = set()
    all_messages: set[tuple[str, str]] = set()
    for after_acks, delay in [(1, 0.0), (300, 0.013), (40, 0.0), (1500, 0.031), (700, 0.002)]:
        acks, messages = await asyncio.to_thread(_run_and_kill, script, data, after_acks, delay)
        all_acks |= acks
        all_messages |= messages

        result = verify(data)
        assert result.ok, result.summary
        assert result.first_seq == 1 and result.last_seq is not None
        assert max(all_acks) <= result.last_seq  # gap-free up to last_seq, so all are present
        async with await AuditLog.open(data) as log:  # recovery catches the sealing state up
            transcripts = await log.conversations.load_transcripts()
            saved = {(agent, m.content) for agent, t in transcripts.items() for m in t.messages}
            assert all_messages <= saved
            assert not [t.damage for t in transcripts.values() if t.damage]  # a kill cuts a tail, never a middle
            assert log.last_seq == result.last_seq
        assert verify(data).ok
