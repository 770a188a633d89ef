"""The audit log as the running daemon keeps it: what is recorded, by whom, that it survives a
restart and a kill -9, and that no prompt text lies in the clear. Real daemon, real llama.cpp."""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from collections.abc import Callable

import grpc
import pytest

from enclave_contract.v1 import agents_pb2, chat_pb2
from tests.helpers import MARKER, Daemon, chat, enclave, short_tmpdir

pytestmark = pytest.mark.timeout(180)

CONFIG = """
[[models]]
name = "tiny"
n_ctx = 1024
n_seq_max = 4
n_threads = 2

[[agents]]
name = "scribe"
model = "tiny"
max_tokens = 12
seed = 3
"""


def audit_lines(daemon: Daemon, *args: str) -> list[dict]:
    r = enclave(daemon, "audit", *args)
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()]


def test_turns_and_agent_changes_are_recorded_with_who_did_them(daemon_factory: Callable[..., Daemon]) -> None:
    d = daemon_factory(CONFIG)
    events = chat(d.stubs(), "scribe", f"note this: {MARKER}")
    turn = events[0].turn_id
    d.stubs().agents.PutAgent(
        agents_pb2.PutAgentRequest(agent=agents_pb2.Agent(name="clerk", model="tiny", system="File things.")), timeout=10
    )
    d.stubs().agents.DeleteAgent(agents_pb2.DeleteAgentRequest(name="clerk"), timeout=10)

    records = audit_lines(d, "tail", "-n", "50")
    actions = [r["action"] for r in records]
    assert actions[0] == "daemon.start"
    assert actions[1:] == ["chat.request", "model.load", "chat.completion", "agent.create", "agent.delete", "client.connect", "audit.read"]
    request, load, completion = records[1], records[2], records[3]
    assert load["model"] == "tiny" and load["payload"]["seconds"] > 0
    assert request["turn"] == completion["turn"] == turn and request["agent"] == "scribe" and request["model"] == "tiny"
    assert request["payload"]["text"]["prompt"] == f"note this: {MARKER}"
    reply = "".join(e.delta.text for e in events if e.HasField("delta"))
    assert completion["payload"]["text"]["completion"] == reply
    assert completion["payload"]["usage"]["completion_tokens"] == events[-1].finished.usage.completion_tokens
    for r in records[1:-2]:  # these tests' own stubs skip the handshake
        assert r["actor"] == {"user": r["actor"]["user"], "uid": os.getuid(), "pid": None, "auth": "socket-owner"}
    assert records[-1]["actor"] == records[-2]["actor"]  # the tail's read of the log, by the tail
    cli = records[-1]["actor"]  # `enclave audit tail` said who it is, through SO_PEERCRED
    assert cli["auth"] == "peercred" and cli["uid"] == os.getuid() and cli["pid"] not in (None, os.getpid())
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))

    only = audit_lines(d, "tail", "--action", "chat.*", "--agent", "scribe")
    assert [r["action"] for r in only] == ["chat.request", "chat.completion"]
    r = enclave(d, "chat", "scribe", "from the command line")
    assert r.returncode == 0, r.stderr
    mine = audit_lines(d, "tail", "-n", "1", "--action", "chat.request")[0]
    assert mine["actor"]["auth"] == "peercred" and mine["actor"]["pid"] not in (None, os.getpid()), (
        "a chat is recorded with its client's pid"
    )


def test_verify_and_export_through_the_daemon_are_themselves_recorded(daemon_factory: Callable[..., Daemon]) -> None:
    d = daemon_factory(CONFIG)
    chat(d.stubs(), "scribe", "hello")
    r = enclave(d, "audit", "verify")
    assert r.returncode == 0, r.stderr
    assert "records" in r.stdout and len(r.stdout.strip().splitlines()) == 1
    exported = audit_lines(d, "export", "--format", "jsonl")
    assert [x["action"] for x in exported][-4:] == ["client.connect", "audit.verify", "client.connect", "audit.export"], (
        "the export is recorded before it is read"
    )
    assert exported[-1]["actor"]["pid"] == exported[-2]["actor"]["pid"], "by the client that connected"
    assert enclave(d, "audit", "rotate-key").returncode == 0
    chat(d.stubs(), "scribe", "after rotation")
    assert enclave(d, "audit", "verify").returncode == 0


def test_a_restart_keeps_every_conversation_and_the_log_verifies_offline(daemon_factory: Callable[..., Daemon]) -> None:
    home = short_tmpdir()
    d = daemon_factory(CONFIG, home=home)
    events = chat(d.stubs(), "scribe", f"remember {MARKER}")
    d.stubs().agents.PutAgent(
        agents_pb2.PutAgentRequest(agent=agents_pb2.Agent(name="clerk", model="tiny", system="File things.")), timeout=10
    )
    chat(d.stubs(), "clerk", "file it")
    assert d.stop() == 0

    again = daemon_factory(CONFIG, home=home)
    stubs = again.stubs()
    names = [a.name for a in stubs.agents.ListAgents(agents_pb2.ListAgentsRequest(), timeout=10).agents]
    assert names == ["scribe", "clerk"], "an agent created at run time comes back"
    messages = stubs.agents.GetTranscript(agents_pb2.GetTranscriptRequest(name="scribe"), timeout=10).messages
    assert [m.content for m in messages] == [f"remember {MARKER}", "".join(e.delta.text for e in events if e.HasField("delta"))]
    assert [m.turn_id for m in messages] == [events[0].turn_id] * 2
    assert again.stop() == 0

    data = home / "data"
    r = enclave(None, "audit", "verify", "--data", str(data))
    assert r.returncode == 0, r.stderr + r.stdout
    actions = [json.loads(line)["action"] for line in enclave(None, "audit", "export", "--data", str(data)).stdout.splitlines()]
    assert actions.count("daemon.start") == 2 and actions.count("daemon.stop") == 2

    for path in data.iterdir():
        assert MARKER.encode() not in path.read_bytes(), f"{path.name} holds prompt text in the clear"
        assert path.stat().st_mode & 0o077 == 0, f"{path.name} is readable by others"
    for log in home.glob("enclaved-*.log"):
        assert MARKER not in log.read_text(errors="replace")


def test_kill_9_under_load_loses_no_acknowledged_event(daemon_factory: Callable[..., Daemon]) -> None:
    home = short_tmpdir()
    acknowledged: set[str] = set()
    for round_ in range(3):
        d = daemon_factory(CONFIG, home=home)
        stop = threading.Event()

        def talk(i: int, d: Daemon = d, stop: threading.Event = stop, round_: int = round_) -> None:
            stubs = d.stubs()
            while not stop.is_set():
                try:
                    events = list(stubs.chat.Chat(chat_pb2.ChatRequest(agent="scribe", message=f"{MARKER} {round_} {i}"), timeout=30))
                except grpc.RpcError:
                    return
                if events and events[-1].HasField("finished"):
                    acknowledged.add(events[-1].turn_id)

        threads = [threading.Thread(target=talk, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        time.sleep(1.0 + random.random() * 2)
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait()
        stop.set()
        for t in threads:
            t.join(30)
    assert len(acknowledged) >= 3, "the daemon answered some turns before each kill"

    data = home / "data"
    r = enclave(None, "audit", "verify", "--data", str(data))
    assert r.returncode == 0, r.stderr + r.stdout
    records = [json.loads(line) for line in enclave(None, "audit", "export", "--data", str(data)).stdout.splitlines()]
    completed = {x["turn"] for x in records if x["action"] == "chat.completion"}
    requested = {x["turn"] for x in records if x["action"] == "chat.request"}
    assert acknowledged <= completed <= requested, "every reply a client saw is in the log, after its request"
    for path in data.iterdir():
        assert MARKER.encode() not in path.read_bytes(), f"{path.name} holds prompt text in the clear"


def test_a_passphrase_protected_log_needs_the_passphrase_to_serve(
    daemon_factory: Callable[..., Daemon], monkeypatch: pytest.MonkeyPatch
) -> None:
    home = short_tmpdir()
    monkeypatch.setenv("ENCLAVE_AUDIT_PASSPHRASE", "correct horse battery staple")
    d = daemon_factory(CONFIG, home=home)
    chat(d.stubs(), "scribe", f"kept under a passphrase {MARKER}")
    assert d.stop() == 0
    for passphrase, words in [(None, "is protected by a passphrase; set ENCLAVE_AUDIT_PASSPHRASE"), ("wrong", "wrong passphrase")]:
        if passphrase is None:
            monkeypatch.delenv("ENCLAVE_AUDIT_PASSPHRASE")
        else:
            monkeypatch.setenv("ENCLAVE_AUDIT_PASSPHRASE", passphrase)
        refused = daemon_factory(CONFIG, home=home, wait=False)
        assert refused.proc.wait(30) == 2
        err = refused.log.strip()
        assert words in err and len(err.splitlines()) == 1 and "Traceback" not in err and MARKER not in err
    monkeypatch.setenv("ENCLAVE_AUDIT_PASSPHRASE", "correct horse battery staple")
    again = daemon_factory(CONFIG, home=home)
    messages = again.stubs().agents.GetTranscript(agents_pb2.GetTranscriptRequest(name="scribe"), timeout=10).messages
    assert messages[0].content == f"kept under a passphrase {MARKER}"


async def test_the_workbench_is_recorded_as_itself_and_shows_the_verified_log(daemon_factory: Callable[..., Daemon]) -> None:
    from enclave.app import EnclaveApp
    from enclave.screens.audit.badge import VerifyBadge
    from enclave.screens.audit.records import AuditList
    from tests.helpers import wait_until

    d = daemon_factory(CONFIG)
    app = EnclaveApp(d.socket, spawn=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_until(pilot, lambda: app.workbench.attached)
        await pilot.press(*"from the workbench", "enter")
        await wait_until(pilot, lambda: app.workbench.panes["scribe"].state == "idle" and app.workbench.panes["scribe"].reply_text != "")
        await pilot.press("alt+u")
        await wait_until(pilot, lambda: app.screen.query(VerifyBadge) and app.screen.query_one(VerifyBadge).has_class("-ok"))
        records = app.screen.query_one(AuditList)
        await wait_until(pilot, lambda: records.count > 0 and records.record(records.count - 1) is not None)
        actions = [records.record(i).action for i in range(records.count)]
        assert "audit.verify" in actions and actions.count("chat.request") == 1
        request = records.record(actions.index("chat.request"))
        assert request.actor.auth == "peercred" and request.actor.pid == os.getpid(), "the workbench said who it is"


def test_cancels_and_refused_calls_are_recorded(daemon_factory: Callable[..., Daemon]) -> None:
    d = daemon_factory(CONFIG)
    stubs = d.stubs()
    stubs.agents.PutAgent(
        agents_pb2.PutAgentRequest(agent=agents_pb2.Agent(name="long", model="tiny", sampling=agents_pb2.SamplingParams(max_tokens=900))),
        timeout=10,
    )
    call = stubs.chat.Chat(chat_pb2.ChatRequest(agent="long", message="go on and on"), timeout=60)
    first = next(call)
    stubs.chat.Cancel(chat_pb2.CancelRequest(turn_id=first.turn_id), timeout=10)
    assert list(call)[-1].finished.finish_reason == chat_pb2.FINISH_REASON_CANCELLED
    with pytest.raises(grpc.RpcError) as refused:
        stubs.agents.ListAgents(agents_pb2.ListAgentsRequest(), timeout=10, metadata=[("x-enclave-peer", "not-a-token")])
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED and "not-a-token" not in refused.value.details()

    records = audit_lines(d, "tail", "-n", "50")
    cancel = next(r for r in records if r["action"] == "chat.cancel")
    assert cancel["turn"] == first.turn_id and cancel["outcome"] == "cancelled"
    denied = next(r for r in records if r["action"] == "access.denied")
    assert denied["outcome"] == "denied" and denied["payload"]["method"] == "ListAgents"
    assert "not-a-token" not in json.dumps(records), "tokens are never written down"


def test_enclave_audit_verify_names_the_first_bad_record_of_a_tampered_copy(daemon_factory: Callable[..., Daemon]) -> None:
    import sqlite3

    home = short_tmpdir()
    d = daemon_factory(CONFIG, home=home)
    chat(d.stubs(), "scribe", "one")
    chat(d.stubs(), "scribe", "two")
    assert d.stop() == 0
    data = home / "data"
    with sqlite3.connect(data / "audit.db") as db:
        seq, agent = db.execute("SELECT seq, agent FROM records WHERE action = 'chat.request' ORDER BY seq DESC LIMIT 1").fetchone()
        db.execute("UPDATE records SET agent = ? WHERE seq = ?", (agent + "x", seq))
    r = enclave(None, "audit", "verify", "--data", str(data))
    assert r.returncode == 1, r.stdout + r.stderr
    assert (
        f"FAILED at seq {seq}: " in r.stdout
        and "altered" in r.stdout
        and len(r.stdout.strip().splitlines()) == 1
        and "Traceback" not in r.stdout + r.stderr
    )
