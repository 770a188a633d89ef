"""The README is a contract: every ``enclave …`` example in its shell blocks runs here, against a
real daemon, as written, and once more with ``--socket PATH`` after the subcommand (the README
says every command takes it). A documented form that breaks fails this test.

Placeholders in the examples (``DIR``, ``FILE``, ``PATH``) become real paths; ``[--flag]`` is
run without and with the flag. Commands that follow forever (``-f``, ``--watch``) must still be
running, with output, after a few seconds.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import Daemon, short_tmpdir, start_daemon

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BIN = Path(sys.executable).parent
FOLLOWING = ("-f", "--follow", "--watch")
OFFLINE = "--data"  # offline audit forms: run on a copy of the data folder
CONFIG = """
[[agents]]
name = "assistant"
model = "demo"
max_tokens = 12
seed = 1

[[agents]]
name = "narrator"
model = "demo"
max_tokens = 12
seed = 2

[[agents]]
name = "poet"
model = "demo"
max_tokens = 12
seed = 3
"""


@dataclass(frozen=True)
class Example:
    line: str  # as the README has it
    command: str  # as run: placeholders filled, one variant of the optional flags


def shell_blocks(text: str) -> list[str]:
    return re.findall(r"```(?:sh|bash|console)\n(.*?)```", text, re.S)


def examples(text: str) -> list[str]:
    """Each command line of a shell block that runs ``enclave`` (comments dropped)."""
    found = []
    for block in shell_blocks(text):
        for raw in block.splitlines():
            line = re.sub(r"\s+#.*$", "", raw).strip()
            if re.search(r"(^|[|/ ])enclave (?!d)", line) or line.endswith("/enclave") or line == "enclave":
                found.append(line)
    return found


def variants(line: str) -> list[str]:
    """``a [--x] [--y]`` → ``a``, ``a --x``, ``a --y``."""
    optional = re.findall(r"\[(--[\w-]+(?: [A-Z]+)?)\]", line)
    bare = re.sub(r"\s*\[--[\w-]+(?: [A-Z]+)?\]", "", line)
    return [bare] + [f"{bare} {flag}" for flag in optional]


def test_the_readme_has_the_examples_this_test_expects() -> None:
    found = examples(README.read_text())
    assert len(found) >= 15, found
    for must in ("enclave status", "enclave chat assistant", "enclave audit verify", "enclave keys create"):
        assert any(must in line for line in found), must


@pytest.fixture(scope="module")
def readme_daemon(model_dir: Path) -> Daemon:
    models = short_tmpdir()
    shutil.copy(model_dir / "tiny.gguf", models / "demo.gguf")
    d = start_daemon(short_tmpdir(), models, CONFIG)
    yield d
    d.stop()


def _run(example: str, daemon: Daemon, cwd: Path, socket_after: bool) -> tuple[int | None, str, str]:
    command = example.replace(".venv/bin/", f"{BIN}/")
    for placeholder, value in (("DIR", str(cwd / "data-copy")), ("FILE", str(cwd / "file")), ("PATH", str(daemon.socket))):
        command = re.sub(rf"\b{placeholder}\b", value, command)
    if socket_after:
        command += f" --socket {daemon.socket}"
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", "ENCLAVE_SOCKET": str(daemon.socket)}
    # `enclave service install --user` writes into these: the test's folder, not the home folder
    env |= {"XDG_CONFIG_HOME": str(cwd / "config"), "XDG_DATA_HOME": str(cwd / "data-home")}
    env.pop("ENCLAVE_CONFIG", None)
    follows = any(f" {flag}" in f" {command} " for flag in FOLLOWING)
    proc = subprocess.Popen(
        ["bash", "-c", command], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, err = proc.communicate(timeout=4 if follows else 120)
        return proc.returncode, out, err
    except subprocess.TimeoutExpired:
        if not follows:
            raise
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=20)
        return None, out, err


@pytest.mark.parametrize("socket_after", [False, True], ids=["as-written", "socket-after-subcommand"])
def test_every_readme_example_runs(readme_daemon: Daemon, socket_after: bool, tmp_path: Path) -> None:
    failures = []
    lines = examples(README.read_text())
    (tmp_path / "models").mkdir()
    for line in lines:
        for command in variants(line):
            if " demo" in f" {command}" and "enclave demo" in command and socket_after:
                continue  # the demo runs its own private daemon; --socket means nothing to it
            if OFFLINE in command:
                shutil.rmtree(tmp_path / "data-copy", ignore_errors=True)
                shutil.copytree(readme_daemon.home / "data", tmp_path / "data-copy")
            code, out, err = _run(command, readme_daemon, tmp_path, socket_after)
            follows = any(f" {flag}" in f" {command} " for flag in FOLLOWING)
            if follows and not (code is None and out.strip()):
                failures.append(f"{command!r} should keep following with output; exit {code}: {err.strip()[-300:]}")
            elif not follows and code != 0:
                failures.append(f"{command!r} exited {code}: {err.strip()[-300:]}")
            elif "Traceback" in err:
                failures.append(f"{command!r} printed a traceback")
    assert not failures, "\n".join(failures)
