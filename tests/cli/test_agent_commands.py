"""Every workbench action on agents has a scriptable twin: ``enclave agent put|clear|delete``
and ``enclave transcript``; ``audit tail -n 0`` prints nothing; ``status --watch`` redraws in place
on a terminal and streams JSON lines with ``--json``; reading the audit log, by ``tail`` or by
following it (``tail -f``), is itself recorded."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
from collections.abc import Callable

from tests.helpers import SHARED_CONFIG, Daemon, enclave, short_tmpdir


def agent(d: Daemon, name: str) -> dict[str, object]:
    return next(a for a in json.loads(enclave(d, "agents", "--json").stdout) if a["name"] == name)


def test_put_creates_then_edits_only_what_is_given(daemon_factory: Callable[..., Daemon]) -> None:
    d = daemon_factory(SHARED_CONFIG)
    r = enclave(d, "agent", "put", "reviewer", "--system", "no model yet")
    assert r.returncode == 1 and "--model NAME" in r.stderr and r.stderr.count("\n") == 1
    r = enclave(
        d,
        "agent",
        "put",
        "reviewer",
        "--model",
        "tiny",
        "--system-file",
        "-",
        "--max-tokens",
        "6",
        "--stop",
        "END",
        stdin="You review code.\n",
    )
    assert r.returncode == 0 and r.stdout == "created reviewer (model tiny)\n", r.stderr
    r = enclave(d, "agent", "put", "reviewer", "--temperature", "0.2")
    assert r.returncode == 0 and r.stdout.startswith("updated reviewer")
    got = agent(d, "reviewer")
    assert got["model"] == "tiny" and got["system"] == "You review code.\n"
    assert got["sampling"]["max_tokens"] == 6 and got["sampling"]["stop"] == ["END"]
    assert abs(got["sampling"]["temperature"] - 0.2) < 1e-6
    r = enclave(d, "agent", "put", "reviewer", "--top-p", "7")
    assert r.returncode == 1 and "top_p" in r.stderr and r.stderr.count("\n") == 1


def test_transcript_clear_and_delete(daemon_factory: Callable[..., Daemon]) -> None:
    d = daemon_factory(SHARED_CONFIG)
    assert enclave(d, "chat", "a1", "hello there").returncode == 0
    text = enclave(d, "transcript", "a1")
    assert text.returncode == 0 and text.stdout.startswith("system: You are agent one.\n\nuser: hello there\n\nassistant: ")
    lines = [json.loads(line) for line in enclave(d, "transcript", "a1", "--json").stdout.splitlines()]
    assert [m["role"] for m in lines] == ["system", "user", "assistant"] and lines[2]["finish_reason"]
    assert enclave(d, "agent", "clear", "a1").stdout == "cleared a1's conversation\n"
    assert enclave(d, "transcript", "a1", "--json").stdout.count("\n") == 1  # the system prompt only
    assert enclave(d, "agent", "delete", "a1").stdout == "deleted a1\n"
    r = enclave(d, "transcript", "a1")
    assert r.returncode == 1 and "a1" in r.stderr and r.stderr.count("\n") == 1


def test_audit_tail_zero_prints_nothing(shared_daemon: Daemon) -> None:
    r = enclave(shared_daemon, "audit", "tail", "-n", "0")
    assert r.returncode == 0 and r.stdout == ""
    assert len(enclave(shared_daemon, "audit", "tail", "-n", "2").stdout.splitlines()) == 2
    r = enclave(shared_daemon, "audit", "tail", "-n", "-1")
    assert r.returncode == 1 and "0 or more" in r.stderr


def test_status_watch_redraws_in_place_on_a_terminal_and_streams_json_lines_otherwise(shared_daemon: Daemon) -> None:
    main, child = pty.openpty()
    cmd = [sys.executable, "-m", "enclave.cli", "--socket", str(shared_daemon.socket), "status", "--watch", "--interval", "0.1"]
    proc = subprocess.Popen(cmd, stdout=child, stderr=child, stdin=subprocess.DEVNULL)
    os.close(child)
    seen = b""
    try:
        while seen.count(b"\x1b[H") < 3:
            seen += os.read(main, 65536)
    finally:
        proc.kill()
        proc.wait()
        os.close(main)
    assert b"MODEL" in seen
    # the screen is cleared once; later frames overwrite it line by line (a clear a frame
    # would push every frame into tmux's scrollback)
    assert seen.count(b"\x1b[2J") == 1 and seen.startswith(b"\x1b[H\x1b[2J")
    frame = seen.split(b"\x1b[H")[2]
    assert b"MODEL" in frame and frame.endswith(b"\x1b[J") and b"\x1b[K\r\n" in frame

    piped = subprocess.Popen([*cmd, "--json"], stdout=subprocess.PIPE)
    assert piped.stdout is not None
    try:
        snapshots = [json.loads(piped.stdout.readline()) for _ in range(2)]
    finally:
        piped.kill()
        piped.wait()
    assert all("uptime_seconds" in s for s in snapshots)
    # 64-bit counts are JSON numbers (proto's JSON mapping would write strings)
    sizes = [m["size_bytes"] for s in snapshots for m in s["models"]]
    assert sizes and all(isinstance(n, int) and n > 0 for n in sizes), sizes
    assert all(isinstance(m["state"], str) and m["state"].islower() for s in snapshots for m in s["models"])
    [listed] = [m for m in json.loads(enclave(shared_daemon, "models", "--json").stdout) if m["name"] == "tiny"]
    assert isinstance(listed["size_bytes"], int) and isinstance(listed["parameter_count"], int)


def test_reading_the_audit_log_is_itself_recorded(daemon_factory: Callable[..., Daemon]) -> None:
    d = daemon_factory(SHARED_CONFIG)
    for _ in range(3):
        assert enclave(d, "audit", "tail", "-n", "5").returncode == 0
    r = enclave(d, "audit", "export", "--format", "jsonl", "--action", "audit.read")
    reads = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(reads) == 3 and all(rec["payload"]["via"] == "rows" for rec in reads)  # three clients, one read each
    assert all(rec["actor"]["auth"] == "peercred" and rec["actor"]["pid"] for rec in reads)


def test_following_the_audit_log_is_itself_recorded(daemon_factory: Callable[..., Daemon]) -> None:
    d = daemon_factory(SHARED_CONFIG)
    cmd = [sys.executable, "-m", "enclave.cli", "--socket", str(d.socket), "audit", "tail", "-f", "-n", "3"]
    follow = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert follow.stdout is not None and follow.stderr is not None
    try:
        # the daemon records the read before it sends a record: one line out means it is in the log
        first = json.loads(follow.stdout.readline())
        assert first["seq"] > 0
    finally:
        follow.send_signal(signal.SIGINT)  # Ctrl-C, as a person stops it
        assert follow.wait(timeout=30) == 130, follow.stderr.read()
    assert "Traceback" not in follow.stderr.read()
    r = enclave(d, "audit", "export", "--format", "jsonl", "--action", "audit.read")
    reads = [json.loads(line) for line in r.stdout.splitlines()]
    assert [rec["payload"]["via"] for rec in reads] == ["follow"]
    assert reads[0]["actor"]["pid"] == follow.pid and reads[0]["actor"]["auth"] == "peercred"


def test_put_sets_and_clears_fallbacks_and_they_survive_a_restart(daemon_factory: Callable[..., Daemon]) -> None:
    home = short_tmpdir()
    d = daemon_factory(SHARED_CONFIG, home=home)
    r = enclave(d, "agent", "put", "helper", "--model", "tiny", "--fallbacks", "small, plain")
    assert r.returncode == 0 and r.stdout == "created helper (model tiny, then small, plain)\n", r.stderr
    assert agent(d, "helper")["fallbacks"] == ["small", "plain"]
    table = enclave(d, "agents").stdout.splitlines()
    assert table[0].split()[:3] == ["NAME", "MODEL", "FALLBACKS"]
    assert next(line for line in table if line.startswith("helper")).split()[:3] == ["helper", "tiny", "small,plain"]
    r = enclave(d, "agent", "put", "helper", "--temperature", "0.5")  # what is not given stays
    assert r.returncode == 0 and agent(d, "helper")["fallbacks"] == ["small", "plain"]
    for bad, says in (("tiny", "the agent's own model"), ("small,small", "named twice"), ("nosuch", "no model named 'nosuch'")):
        r = enclave(d, "agent", "put", "helper", "--fallbacks", bad)
        assert r.returncode == 1 and r.stderr.startswith("enclave: fallbacks: ") and says in r.stderr, r.stderr
        assert r.stderr.count("\n") == 1
    assert agent(d, "helper")["fallbacks"] == ["small", "plain"]  # a refused put changes nothing
    (update,) = [
        json.loads(line)
        for line in enclave(d, "audit", "tail", "-n", "50", "--action", "agent.*").stdout.splitlines()
        if json.loads(line)["action"] == "agent.update"
    ]
    assert update["payload"]["fallbacks"] == ["small", "plain"]
    assert d.stop() == 0
    d = daemon_factory(SHARED_CONFIG, home=home)
    assert agent(d, "helper")["fallbacks"] == ["small", "plain"]
    assert enclave(d, "agent", "put", "helper", "--fallbacks", "").returncode == 0
    assert agent(d, "helper")["fallbacks"] == []
    assert "FALLBACKS" not in enclave(d, "agents").stdout
