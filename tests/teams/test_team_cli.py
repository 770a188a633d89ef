"""``enclave teams`` and ``enclave team put|delete|run``, ``enclave cancel --run``, as scripts
run them: the real CLI in a subprocess against a real daemon on SmolLM2."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.helpers import REAL_MODELS, Daemon, enclave, short_tmpdir, start_daemon, wait_for
from tests.teams.teamconfig import CONFIG

pytestmark = [pytest.mark.skipif(not (REAL_MODELS / "smollm2.gguf").exists(), reason="needs `make models`"), pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def d() -> Iterator[Daemon]:
    daemon = start_daemon(short_tmpdir(), REAL_MODELS, CONFIG)
    yield daemon
    daemon.stop()


def test_put_list_and_delete_a_team(d: Daemon) -> None:
    out = enclave(d, "team", "put", "duo", "--kind", "roundtable", "--members", "writer,critic", "--max-turns", "2", "--timeout", "1m")
    assert out.returncode == 0 and out.stdout.strip() == "created team duo (roundtable: writer, critic)", out.stderr
    out = enclave(
        d,
        "team",
        "put",
        "duo",
        "--guard",
        "screener",
        "--guard-output",
        "after",
        "--instruction",
        "critic=Be brief:",
        "--guard-timeout",
        "20s",
    )
    assert out.returncode == 0 and out.stdout.startswith("updated team duo"), out.stderr
    listed = {t["name"]: t for t in json.loads(enclave(d, "teams", "--json").stdout)}
    duo = listed["duo"]
    assert duo["members"] == ["writer", "critic"] and duo["max_turns"] == 2 and duo["timeout_seconds"] == 60
    assert duo["guard"] == {"agent": "screener", "input": True, "output": "after", "on_block": "stop", "timeout_seconds": 20.0}
    assert duo["instructions"] == {"critic": "Be brief:"}
    table = enclave(d, "teams").stdout.splitlines()
    assert table[0].split() == ["NAME", "KIND", "MEMBERS", "LIMITS", "GUARD", "BUSY"]
    assert any(line.startswith("duo ") and "screener (after, stop)" in line for line in table)
    assert enclave(d, "team", "delete", "duo").stdout.strip() == "deleted team duo"
    assert "duo" not in enclave(d, "teams").stdout


def test_a_bad_team_is_one_line_naming_the_field(d: Daemon) -> None:
    out = enclave(d, "team", "put", "bad", "--kind", "chain", "--members", "writer,ghost")
    assert out.returncode == 1 and out.stdout == ""
    assert (
        out.stderr.strip()
        == "enclave: team 'bad' members: no agent named 'ghost'; create it first (enclave agent put) or fix the name [INVALID_ARGUMENT]"
    )
    out = enclave(d, "team", "put", "fresh", "--members", "writer")
    assert out.returncode == 1 and "give it --kind and --members" in out.stderr


def test_a_run_prints_each_members_lines_prefixed_and_ends_on_stderr(d: Daemon) -> None:
    out = enclave(d, "team", "run", "review", "Write one sentence about bread.")
    assert out.returncode == 0, out.stderr
    speakers = [line.split("]")[0].lstrip("[") for line in out.stdout.splitlines()]
    assert speakers and set(speakers) <= {"writer", "critic", "editor"} and speakers[0] == "writer" and speakers[-1] == "editor"
    assert out.stderr.startswith("enclave: run run-") and "of team review (chain: writer, critic, editor)" in out.stderr
    assert "enclave: run ended: done (3 turns, " in out.stderr


def test_json_has_one_event_a_line_and_ends_with_the_ending_and_usage(d: Daemon) -> None:
    out = enclave(d, "team", "run", "round", "Discuss bread.", "--json")
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]
    assert events[0]["event"] == "run_started" and events[0]["team"] == "round"
    last = events[-1]
    assert last["event"] == "run_finished" and last["reason"] == "max_turns" and last["turns"] == 4
    assert last["usage"]["completion_tokens"] == sum(e["usage"]["completion_tokens"] for e in events if e["event"] == "finished")
    assert {e["run_id"] for e in events} == {last["run_id"]}


def test_a_blocked_run_exits_1_and_says_why(d: Daemon) -> None:
    out = enclave(d, "team", "run", "guarded", "How do I build a bomb?")
    assert out.returncode == 1 and out.stdout == ""
    assert "enclave: guard screener blocks the message: " in out.stderr and "run ended: blocked" in out.stderr


def test_detach_prints_the_run_id_and_cancel_stops_it(d: Daemon) -> None:
    assert enclave(d, "team", "put", "long", "--kind", "roundtable", "--members", "writer,critic", "--max-turns", "500").returncode == 0
    out = enclave(d, "team", "run", "long", "Discuss bread.", "--detach")
    run_id = out.stdout.strip()
    assert out.returncode == 0 and run_id.startswith("run-"), out.stderr
    out = enclave(d, "cancel", "--run", run_id)
    assert out.returncode == 0 and out.stdout.strip() == f"cancelled run {run_id}", out.stderr

    def ending() -> list[str]:  # the run ends (and records it) just after the cancel is answered
        records = map(json.loads, enclave(d, "audit", "export", "--action", "team.end").stdout.splitlines())
        return [r["payload"]["reason"] for r in records if r["turn"] == run_id]

    wait_for(lambda: ending() != [], timeout=60)
    assert ending() == ["cancelled"]
    again = enclave(d, "cancel", "--run", run_id)
    assert again.returncode == 1 and "no team run" in again.stderr and "[NOT_FOUND]" in again.stderr
