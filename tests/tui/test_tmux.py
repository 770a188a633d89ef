"""End to end, as a person would: the real `enclave` command inside tmux, a real daemon."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from enclave_contract.v1 import agents_pb2
from tests.helpers import Daemon

pytestmark = [pytest.mark.timeout(120), pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")]


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", "-L", "enclave-test", *args], capture_output=True, text=True, check=True).stdout


def screen_until(predicate: callable, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = tmux("capture-pane", "-t", "e2e", "-p")
        if predicate(text) or time.monotonic() > deadline:
            return text
        time.sleep(0.2)


def notices(screen: str) -> str:
    """The text of the notices on a screen (toasts: lines that start with ``▌`` at the right of
    the screen), their lines joined into one line."""
    words = []
    for line in screen.splitlines():
        _, bar, text = line.rpartition("▌")
        if bar:
            words += text.rstrip(" │╯▔▁▎─").split()
    return " ".join(words)


def test_tokens_appear_in_a_pane(shared_daemon: Daemon) -> None:
    enclave = Path(sys.executable).with_name("enclave")
    # COLUMNS/LINES from this process (Pilot tests set them) would override the window's size
    command = f"env -u COLUMNS -u LINES {enclave} --socket {shared_daemon.socket} --no-spawn"
    tmux("-f", "/dev/null", "new-session", "-d", "-s", "e2e", "-x", "160", "-y", "48", command)
    try:
        screen = screen_until(lambda s: "a4" in s and "idle" in s)
        assert "1  a1 · tiny · idle" in screen
        tmux("send-keys", "-t", "e2e", "hello from tmux", "Enter")
        stubs = shared_daemon.stubs()

        def replied() -> bool:
            messages = stubs.agents.GetTranscript(agents_pb2.GetTranscriptRequest(name="a1"), timeout=10).messages
            return len(messages) >= 2 and messages[-2].content == "hello from tmux"

        deadline = time.monotonic() + 30
        while not replied() and time.monotonic() < deadline:
            time.sleep(0.2)
        reply = stubs.agents.GetTranscript(agents_pb2.GetTranscriptRequest(name="a1"), timeout=10).messages[-1].content
        first_words = reply.strip().split()[0][:8]
        screen = screen_until(lambda s: "hello from tmux" in s and first_words in s)
        assert "hello from tmux" in screen
        assert first_words in screen, f"the reply's first word {first_words!r} is on screen"
        # tmux's default set-clipboard (external) drops OSC 52 from the app: the copy goes
        # through tmux's buffer; with "on", OSC 52 from the app fills it; with "off" only tmux's
        # paste buffer gets it, and the notice says so
        for clipboard in ("external", "on", "off"):
            tmux("set-option", "-g", "set-clipboard", clipboard)
            subprocess.run(["tmux", "-L", "enclave-test", "delete-buffer"], capture_output=True)
            tmux("send-keys", "-t", "e2e", "M-c")
            deadline = time.monotonic() + 10
            while subprocess.run(["tmux", "-L", "enclave-test", "show-buffer"], capture_output=True, text=True).stdout != reply:
                assert time.monotonic() < deadline, f"alt+c puts the last answer on the clipboard (set-clipboard {clipboard})"
                time.sleep(0.1)
        screen = screen_until(lambda s: "set -g set-clipboard on" in notices(s))
        said = notices(screen)
        assert "but only into tmux's paste buffer (prefix ] pastes it), not the clipboard" in said, screen
        assert said.count("set -g set-clipboard on") == 1, "only the copy with set-clipboard off warns"
        # ESC+2 (what tmux sends for alt+2) selects pane 2, even with a bracketed paste right
        # behind it; the paste keeps every line
        tmux("send-keys", "-t", "e2e", "M-2")
        tmux("set-buffer", "line one\nline two\nline three")
        tmux("paste-buffer", "-p", "-t", "e2e")
        screen_until(lambda s: "line one⏎line two⏎line three" in s)
        tmux("send-keys", "-t", "e2e", "Enter")
        deadline = time.monotonic() + 30
        while not any(
            m.content == "line one\nline two\nline three"
            for m in stubs.agents.GetTranscript(agents_pb2.GetTranscriptRequest(name="a2"), timeout=10).messages
        ):
            screen = tmux("capture-pane", "-t", "e2e", "-p")
            assert time.monotonic() < deadline, f"alt+2 then a 3-line paste sends all three lines to a2:\n{screen}"
            time.sleep(0.2)
        tmux("send-keys", "-t", "e2e", "C-q")
        deadline = time.monotonic() + 10
        while subprocess.run(["tmux", "-L", "enclave-test", "has-session", "-t", "e2e"], capture_output=True).returncode == 0:
            assert time.monotonic() < deadline, "ctrl+q quits the workbench"
            time.sleep(0.1)
    finally:
        subprocess.run(["tmux", "-L", "enclave-test", "kill-server"], capture_output=True)
