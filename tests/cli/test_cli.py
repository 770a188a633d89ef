"""The `enclave` command against a real daemon, as a script would use it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from enclave.text import safe_text
from tests.helpers import Daemon, enclave, short_tmpdir

pytestmark = pytest.mark.timeout(120)


def test_models_and_agents_as_json(shared_daemon: Daemon) -> None:
    r = enclave(shared_daemon, "models", "--json")
    assert r.returncode == 0, r.stderr
    models = {m["name"]: m for m in json.loads(r.stdout)}
    assert models["tiny"]["architecture"] == "llama"
    assert models["broken"]["state"] == "invalid"
    r = enclave(shared_daemon, "agents", "--json")
    assert {"a1", "a2", "a3", "a4"} <= {a["name"] for a in json.loads(r.stdout)}


def test_human_tables(shared_daemon: Daemon) -> None:
    r = enclave(shared_daemon, "models")
    assert r.stdout.splitlines()[0].split() == ["NAME", "STATE", "SIZE", "QUANT", "PARAMS", "TRAINED-CTX", "ARCH"]
    assert "broken: broken.gguf is not a valid GGUF file" in r.stderr
    r = enclave(shared_daemon, "status")
    assert r.returncode == 0 and r.stdout.startswith("enclaved ")


def test_chat_prints_the_reply(shared_daemon: Daemon) -> None:
    r = enclave(shared_daemon, "chat", "a1", "hello")
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.strip()) > 10


def test_chat_json_ends_with_usage_and_timings(shared_daemon: Daemon) -> None:
    r = enclave(shared_daemon, "chat", "--json", "a2", "count")
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines()]
    assert events[0]["event"] == "started"
    last = events[-1]
    assert last["event"] == "finished" and last["finish_reason"] == "max_tokens"
    assert last["usage"]["completion_tokens"] == 48 and last["usage"]["prompt_tokens"] > 0
    assert last["timings"]["time_to_first_token_ms"] > 0
    assert "".join(e["text"] for e in events if e["event"] == "delta")


def test_chat_all_prefixes_lines_with_the_agent(shared_daemon: Daemon) -> None:
    r = enclave(shared_daemon, "chat", "--to", "a1,a3", "hello both")
    assert r.returncode == 0, r.stderr
    prefixes = {line.split("]")[0] + "]" for line in r.stdout.splitlines()}
    assert prefixes == {"[a1]", "[a3]"}


def test_message_from_stdin(shared_daemon: Daemon) -> None:
    r = enclave(shared_daemon, "chat", "--json", "a4", "-", stdin="from a pipe")
    started = json.loads(r.stdout.splitlines()[0])
    assert started["user_message"] == "from a pipe"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("chat", "ghost", "hi"), "no agent named 'ghost'"),
        (("chat", "a1", ""), "message is empty"),
        (("load", "../x"), "not a path"),
        (("unload", "nosuch"), "no model named"),
        (("cancel",), "usage"),
    ],
)
def test_failures_are_one_line_and_non_zero(shared_daemon: Daemon, args: tuple[str, ...], words: str) -> None:
    r = enclave(shared_daemon, *args)
    assert r.returncode == 1
    assert words in r.stderr
    assert r.stderr.startswith("enclave: ") and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def test_no_daemon_is_a_clear_message() -> None:
    r = enclave(None, "models")
    assert r.returncode == 1
    assert "no enclaved is running at" in r.stderr and "Traceback" not in r.stderr


def test_control_characters_from_the_model_cannot_drive_the_terminal() -> None:
    assert safe_text("ok\x1b[2Jhi\x07\ttab\nline\x9b") == "ok\ufffd[2Jhi\ufffd\ttab\nline\ufffd"


def test_a_daemon_that_holds_its_lock_but_does_not_answer_yet_is_starting() -> None:
    """Between taking its lock and opening its socket the daemon is starting, not absent."""
    from enclaved.transport.lock import InstanceLock

    home = short_tmpdir()
    socket = home / "enclaved.sock"
    lock = InstanceLock(socket)
    lock.acquire()  # as enclaved does first
    try:
        r = subprocess.run(
            [sys.executable, "-m", "enclave.cli", "--socket", str(socket), "status"], capture_output=True, text=True, timeout=60
        )
        assert r.returncode == 1
        assert r.stderr == f"enclave: enclaved is starting at {socket} (pid {os.getpid()}); try again in a moment\n"
    finally:
        lock.release()
    r = subprocess.run([sys.executable, "-m", "enclave.cli", "--socket", str(socket), "status"], capture_output=True, text=True, timeout=60)
    assert "no enclaved is running" in r.stderr
