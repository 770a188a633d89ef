"""A damaged transcript row, or one deleted (from the middle or the end), does not stop the daemon: it
starts, marks that conversation damaged (in ``enclave agents`` and the workbench), records
agent.damaged, and ``enclave agent clear`` starts it afresh."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from enclave_contract.v1 import agents_pb2
from tests.helpers import SHARED_CONFIG, Daemon, chat, db, enclave

pytestmark = pytest.mark.timeout(180)


def transcript(d: Daemon, name: str) -> list[str]:
    got = d.stubs().agents.GetTranscript(agents_pb2.GetTranscriptRequest(name=name), timeout=10)
    return [m.content for m in got.messages if m.role != agents_pb2.ROLE_SYSTEM]


def damaged_records(d: Daemon) -> list[dict[str, object]]:
    r = enclave(d, "audit", "export", "--format", "jsonl", "--action", "agent.damaged")
    return [json.loads(line) for line in r.stdout.splitlines()]


@pytest.mark.parametrize("harm", ["altered", "deleted", "tail cut"])
def test_a_damaged_conversation_is_marked_and_can_be_cleared(harm: str, daemon_factory: Callable[..., Daemon]) -> None:
    d = daemon_factory(SHARED_CONFIG)
    for i in range(3):
        assert chat(d.stubs(), "a1", f"question {i}")[-1].HasField("finished")
    assert chat(d.stubs(), "a2", "unharmed")[-1].HasField("finished")
    assert d.stop() == 0
    with db(d.home / "data") as conn:
        second = conn.execute("SELECT id FROM messages WHERE agent = 'a1' ORDER BY id LIMIT 1 OFFSET 1").fetchone()[0]
        last = conn.execute("SELECT max(id) FROM messages WHERE agent = 'a1'").fetchone()[0]
        if harm == "altered":
            conn.execute("UPDATE messages SET body = zeroblob(length(body)) WHERE id = ?", (second,))
        else:
            conn.execute("DELETE FROM messages WHERE id = ?", (second if harm == "deleted" else last,))

    d = daemon_factory(SHARED_CONFIG, home=d.home)
    expected = {
        "altered": "message 2 cannot be decrypted",
        "deleted": "1 message(s) missing before message 3",
        "tail cut": "the last 1 message(s) are missing",
    }[harm]
    r = enclave(d, "agents")
    assert r.returncode == 0 and f"a1: transcript damaged ({expected}" in r.stdout and "a2: transcript" not in r.stdout, r.stdout
    assert len(transcript(d, "a1")) == 5 and len(transcript(d, "a2")) == 2
    [record] = damaged_records(d)
    assert record["agent"] == "a1" and record["outcome"] == "error"
    assert "Traceback" not in d.log

    # it goes on: a new turn is kept, and the next start still finds it (and the damage)
    assert chat(d.stubs(), "a1", "one more")[-1].HasField("finished")
    assert d.stop() == 0
    d = daemon_factory(SHARED_CONFIG, home=d.home)
    assert len(transcript(d, "a1")) == 7
    assert "a1: transcript damaged" in enclave(d, "agents").stdout  # a cut tail is a gap now

    r = enclave(d, "agent", "clear", "a1")
    assert r.returncode == 0, r.stderr
    assert "damaged" not in enclave(d, "agents").stdout and transcript(d, "a1") == []
    assert chat(d.stubs(), "a1", "afresh")[-1].HasField("finished")
    assert d.stop() == 0
    d = daemon_factory(SHARED_CONFIG, home=d.home)
    assert "damaged" not in enclave(d, "agents").stdout and len(transcript(d, "a1")) == 2
    assert len(damaged_records(d)) == 2  # the two damaged starts, none since the clear
    assert enclave(d, "audit", "verify").returncode == 0


def test_an_agent_whose_stored_settings_were_altered_is_left_out_and_the_rest_serve(daemon_factory: Callable[..., Daemon]) -> None:
    d = daemon_factory(SHARED_CONFIG)
    for name in ("made-later", "kept"):
        new = agents_pb2.Agent(name=name, model="tiny", system=f"I am {name}.")
        d.stubs().agents.PutAgent(agents_pb2.PutAgentRequest(agent=new), timeout=10)
    assert d.stop() == 0
    with db(d.home / "data") as conn:
        conn.execute("UPDATE agents SET body = zeroblob(length(body)) WHERE name = 'made-later'")

    d = daemon_factory(SHARED_CONFIG, home=d.home)
    names = [a["name"] for a in json.loads(enclave(d, "agents", "--json").stdout)]
    assert "made-later" not in names and "kept" in names and "a1" in names
    [record] = damaged_records(d)
    assert record["agent"] == "made-later" and "settings cannot be decrypted" in record["payload"]["damage"]
    assert chat(d.stubs(), "kept", "still here?")[-1].HasField("finished")
