"""The TUI benchmark's instruments: the pane-switch timer sees the workbench select each pane.

The benchmark reads which pane is drawn selected from the bytes the workbench writes to its
terminal (``bench/tui_frames.py``); a switch it cannot see counts as lost, so these tests make
sure that it sees every one, on the real workbench in a real pseudo-terminal.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import bench_tui
from tui_frames import corner_draws, pane_corners, switch_keys

pytestmark = pytest.mark.timeout(90)


def test_corners_are_found_where_textual_draws_them() -> None:
    line = "\x1b[38;5;214m╭──╮\x1b[0m \x1b[38;5;239m╭──╮\x1b[0m"
    data = f"\x1b[1;3Hpartial\x1b[5;1H{line}\n\x1b[9;1H{line}".encode()
    draws = corner_draws(data, base=100)
    assert [(d.row, d.column, d.style) for d in draws] == [
        (5, 1, b"38;5;214"),
        (5, 6, b"38;5;239"),
        (9, 1, b"38;5;214"),
        (9, 6, b"38;5;239"),
    ]
    assert data[draws[1].end - 100 - len("╭".encode()) : draws[1].end - 100] == "╭".encode()
    assert pane_corners(draws, 2) == [(9, 1), (9, 6)]


def test_switch_keys_select_another_pane_each_time() -> None:
    keys = switch_keys(6, 4)
    assert [(name, pane) for name, _, pane in keys] == [
        ("alt+right", 1),
        ("alt+4", 3),
        ("alt+right", 0),
        ("alt+3", 2),
        ("alt+right", 3),
        ("alt+2", 1),
    ]


def test_every_pane_switch_of_the_real_workbench_is_seen() -> None:
    result = bench_tui.run_rate(0, presses=2, spacing=0.1, warmup=0.5, switches=6)
    assert len(result.switches) == 6
    assert result.switches_lost == 0
    assert all(ms < bench_tui.SWITCH_TIMEOUT * 1000 for ms in result.switches)
