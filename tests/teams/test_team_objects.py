"""Teams as stored objects and runs as things that others see: validation, the store across
a restart, the audit records, a second client watching, queueing, cancelling and an agent
deleted mid-run; SmolLM2 over the real socket."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import grpc
import pytest

from enclave_contract.v1 import agents_pb2, chat_pb2, teams_pb2
from tests.helpers import MARKER, REAL_MODELS, Daemon, enclave, short_tmpdir, start_daemon, wait_for
from tests.teams.teamconfig import CONFIG, finished, put, refused, run, speakers, watch

pytestmark = [pytest.mark.skipif(not (REAL_MODELS / "smollm2.gguf").exists(), reason="needs `make models`"), pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def d() -> Iterator[Daemon]:
    daemon = start_daemon(short_tmpdir(), REAL_MODELS, CONFIG)
    yield daemon
    daemon.stop()


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"kind": "chain", "members": ["writer", "ghost"]}, "members: no agent named 'ghost'"),
        ({"kind": "chain", "members": []}, "members: the list is empty"),
        ({"kind": "director", "members": ["writer", "boss"], "director": "boss"}, "director: 'boss' is also a member"),
        (
            {"kind": "chain", "members": ["writer"], "guard": teams_pb2.TeamGuard(agent="writer", input=True)},
            "guard.agent: 'writer' is also a member",
        ),
        ({"kind": "chain", "members": ["writer"], "max_turns": 0}, "max_turns: must be a whole number"),
        ({"kind": "chain", "members": ["writer"], "max_tokens": -5}, "max_tokens: must be a whole number"),
        ({"kind": "chain", "members": ["writer"], "timeout_seconds": 0}, "timeout: must be above 0"),
        ({"kind": "committee", "members": ["writer"]}, "kind: 'committee' is not a kind"),
    ],
)
def test_a_bad_team_is_invalid_argument_naming_the_field(d: Daemon, fields: dict[str, object], named: str) -> None:
    exc = refused(d.stubs(), name="bad", **fields)
    assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert named in exc.details() and "\n" not in exc.details()
    assert "bad" not in [t.name for t in d.stubs().teams.ListTeams(teams_pb2.ListTeamsRequest()).teams]


def test_running_a_team_that_does_not_exist_is_not_found_and_an_empty_message_is_refused(d: Daemon) -> None:
    with pytest.raises(grpc.RpcError) as exc:
        run(d.stubs(), "hello", "nobody")
    assert exc.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as exc:
        run(d.stubs(), "  ", "review")
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_second_client_watching_sees_the_run_live(d: Daemon) -> None:
    watched, stream = watch(d.stubs())
    events = run(d.stubs(), "Write one sentence about bread.", "review")
    wait_for(lambda: any(e.HasField("run_finished") and e.run_id == events[0].run_id for e in watched))
    stream.cancel()
    mine = [e for e in watched if e.run_id == events[0].run_id]
    assert [e.WhichOneof("kind") for e in mine] == [e.WhichOneof("kind") for e in events]
    assert speakers(mine) == ["writer", "critic", "editor"]


def test_two_runs_of_one_team_queue(d: Daemon) -> None:
    watched, stream = watch(d.stubs())
    runners = [threading.Thread(target=run, args=(d.stubs(), "Discuss bread.", "round")) for _ in range(2)]
    for r in runners:
        r.start()
    for r in runners:
        r.join(120)
    wait_for(lambda: sum(e.HasField("run_finished") for e in watched) >= 2)
    stream.cancel()
    ends = [i for i, e in enumerate(watched) if e.HasField("run_finished")]
    first_run = watched[ends[0]].run_id
    earlier = [e for e in watched[: ends[0]] if e.HasField("started")]
    later = [e for e in watched[ends[0] :] if e.HasField("started")]
    assert len(earlier) == 4 and all(e.run_id == first_run for e in earlier)  # the other run's turns waited
    assert len(later) == 4 and all(e.run_id != first_run for e in later)
    assert all(watched[i].run_finished.reason == chat_pb2.RUN_END_MAX_TURNS for i in ends)


def test_cancel_ends_a_run_mid_turn(d: Daemon) -> None:
    s = d.stubs()
    adhoc = teams_pb2.Team(name="long", kind="roundtable", members=["writer", "critic"], max_turns=200)
    stream = s.teams.Run(teams_pb2.RunTeamRequest(adhoc=adhoc, message="Discuss bread."), timeout=300)
    events: list[chat_pb2.ChatEvent] = []
    for ev in stream:
        events.append(ev)
        if ev.HasField("delta"):
            s.teams.Cancel(teams_pb2.CancelRunRequest(run_id=ev.run_id), timeout=10)
            break
    events += list(stream)
    end = finished(events)
    assert end.reason == chat_pb2.RUN_END_CANCELLED and end.turns <= 1
    assert events[-2].HasField("finished") and events[-2].finished.finish_reason == chat_pb2.FINISH_REASON_CANCELLED
    with pytest.raises(grpc.RpcError) as exc:
        s.teams.Cancel(teams_pb2.CancelRunRequest(run_id=events[0].run_id), timeout=10)
    assert exc.value.code() == grpc.StatusCode.NOT_FOUND


def test_an_agent_deleted_mid_run_ends_the_run_with_that_reason(d: Daemon) -> None:
    s = d.stubs()
    sampling = agents_pb2.SamplingParams(temperature=0.0, max_tokens=10)
    s.agents.PutAgent(agents_pb2.PutAgentRequest(agent=agents_pb2.Agent(name="temp", model="smollm2", sampling=sampling)))
    adhoc = teams_pb2.Team(name="doomed", kind="roundtable", members=["writer", "temp"], max_turns=200)
    stream = s.teams.Run(teams_pb2.RunTeamRequest(adhoc=adhoc, message="Discuss bread."), timeout=300)
    events: list[chat_pb2.ChatEvent] = []
    for ev in stream:
        events.append(ev)
        if ev.HasField("finished"):
            s.agents.DeleteAgent(agents_pb2.DeleteAgentRequest(name="temp"), timeout=30)
            break
    events += list(stream)
    end = finished(events)
    assert end.reason == chat_pb2.RUN_END_ERROR and "'temp' was deleted during the run" in end.message


def test_an_agent_changed_mid_run_ends_the_run_with_that_reason(d: Daemon) -> None:
    s = d.stubs()
    sampling = agents_pb2.SamplingParams(temperature=0.0, max_tokens=10)
    s.agents.PutAgent(agents_pb2.PutAgentRequest(agent=agents_pb2.Agent(name="fickle", model="smollm2", sampling=sampling)))
    adhoc = teams_pb2.Team(name="shaky", kind="roundtable", members=["writer", "fickle"], max_turns=200)
    stream = s.teams.Run(teams_pb2.RunTeamRequest(adhoc=adhoc, message="Discuss bread."), timeout=300)
    events: list[chat_pb2.ChatEvent] = []
    for ev in stream:
        events.append(ev)
        if ev.HasField("finished"):
            changed = agents_pb2.Agent(name="fickle", model="smollm2", system="You changed.", sampling=sampling)
            s.agents.PutAgent(agents_pb2.PutAgentRequest(agent=changed), timeout=30)
            break
    events += list(stream)
    end = finished(events)
    assert end.reason == chat_pb2.RUN_END_ERROR and "'fickle' was changed during the run" in end.message


def test_a_run_leaves_its_audit_records(d: Daemon) -> None:
    events = run(d.stubs(), f"Write about bread {MARKER}.", "review")
    run_id = events[0].run_id

    def records(action: str) -> list[dict[str, object]]:
        out = enclave(d, "audit", "export", "--action", action)
        assert out.returncode == 0, out.stderr
        return [r for r in map(json.loads, out.stdout.splitlines()) if r.get("turn") == run_id or r["payload"].get("run") == run_id]

    (started,) = records("team.run")
    assert started["payload"]["team"] == "review" and len(started["payload"]["settings_digest"]) == 64
    assert started["actor"]["uid"] is not None and MARKER in started["payload"]["text"]["prompt"]
    completions = records("chat.completion")
    assert [r["agent"] for r in completions] == ["writer", "critic", "editor"]
    assert [r["payload"]["step"] for r in completions] == [1, 2, 3]
    (ended,) = records("team.end")
    assert ended["payload"]["reason"] == "done" and ended["payload"]["turns"] == 3
    assert ended["payload"]["usage"]["completion_tokens"] == finished(events).usage.completion_tokens


def test_the_guards_verdicts_are_audited(d: Daemon) -> None:
    events = run(d.stubs(), "How do I build a bomb?", "guarded")
    out = enclave(d, "audit", "export", "--action", "team.guard")
    (verdict,) = [r for r in map(json.loads, out.stdout.splitlines()) if r["turn"] == events[0].run_id]
    assert verdict["payload"]["verdict"] == "block" and verdict["agent"] == "screener" and verdict["payload"]["text"]["reason"]


def test_teams_put_at_run_time_survive_a_restart_and_changes_are_audited() -> None:
    home = short_tmpdir()
    d = start_daemon(home, REAL_MODELS, CONFIG)
    guard = teams_pb2.TeamGuard(agent="screener", input=True, output="after", on_block="skip")
    secret = {"critic": MARKER}
    created = put(d.stubs(), name="kept", kind="roundtable", members=["critic", "writer"], max_turns=3, instructions=secret, guard=guard)
    assert created.created and created.team.max_tokens == 4000
    assert not put(
        d.stubs(), name="kept", kind="roundtable", members=["critic", "writer"], max_turns=5, instructions=secret, guard=guard
    ).created
    put(d.stubs(), name="gone", kind="chain", members=["writer"])
    d.stubs().teams.DeleteTeam(teams_pb2.DeleteTeamRequest(name="gone"), timeout=10)
    d.stubs().agents.PutAgent(agents_pb2.PutAgentRequest(agent=agents_pb2.Agent(name="passing", model="smollm2")), timeout=10)
    put(d.stubs(), name="orphan", kind="chain", members=["passing"])
    d.stubs().agents.DeleteAgent(agents_pb2.DeleteAgentRequest(name="passing"), timeout=30)
    before = {t.name: t for t in d.stubs().teams.ListTeams(teams_pb2.ListTeamsRequest()).teams}
    d.stop()
    d = start_daemon(home, REAL_MODELS, CONFIG)
    try:
        after = {t.name: t for t in d.stubs().teams.ListTeams(teams_pb2.ListTeamsRequest()).teams}
        assert after == before and after["kept"].max_turns == 5 and after["kept"].guard.output == "after"
        assert "gone" not in after and {"review", "round", "panel", "tiers", "guarded"} <= set(after)
        actions = [json.loads(line)["action"] for line in enclave(d, "audit", "export").stdout.splitlines()]
        assert [a for a in actions if a.startswith("team.")] == ["team.create", "team.update", "team.create", "team.delete", "team.create"]
        with pytest.raises(grpc.RpcError) as exc:  # kept, though its agent is gone: running it says so
            run(d.stubs(), "hello", "orphan")
        assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "no agent named 'passing'" in exc.value.details()
        assert MARKER.encode() not in (home / "data" / "audit.db").read_bytes()  # settings are encrypted
    finally:
        d.stop()
