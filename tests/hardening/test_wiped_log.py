"""A wiped audit log is not silently replaced: the daemon refuses to start until an operator
says --new-audit-log, and the new log's first record says what it replaced."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tests.helpers import SHARED_CONFIG, Daemon, chat, enclave

pytestmark = pytest.mark.timeout(120)


def test_a_deleted_log_stops_the_start_until_an_operator_starts_a_new_one(daemon_factory: Callable[..., Daemon]) -> None:
    d = daemon_factory(SHARED_CONFIG)
    assert chat(d.stubs(), "a1", "on the record")[-1].HasField("finished")
    assert d.stop() == 0
    data = d.home / "data"
    old_verify = (data / "audit.verify").read_text()
    for name in ("audit.db", "audit.seal", "audit.checkpoint"):
        (data / name).unlink()

    refused = daemon_factory(SHARED_CONFIG, home=d.home, wait=False)
    assert refused.proc.wait(timeout=60) == 2
    assert "is gone, but audit.verify show it existed" in refused.log and "--new-audit-log" in refused.log
    assert refused.log.count("\n") == 1, refused.log
    assert (data / "audit.verify").read_text() == old_verify  # not overwritten

    again = daemon_factory(SHARED_CONFIG, home=d.home, extra=["--new-audit-log"])
    r = enclave(again, "audit", "export", "--format", "jsonl")
    first = json.loads(r.stdout.splitlines()[0])
    assert first["seq"] == 1 and first["action"] == "audit.new"
    old_log_id = old_verify.strip().split(":")[1]
    assert first["payload"]["previous_log_id"] == old_log_id
    assert sorted(p.name.split(".lost-")[0] for p in data.iterdir() if ".lost-" in p.name) == ["audit.key", "audit.verify"]
    assert enclave(again, "audit", "verify").returncode == 0
    assert again.stop() == 0

    # once the new log runs, the flag changes nothing
    third = daemon_factory(SHARED_CONFIG, home=d.home, extra=["--new-audit-log"])
    assert "is intact; it goes on" in third.log
    assert enclave(third, "audit", "verify").returncode == 0
