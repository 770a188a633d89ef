"""A bounded run of the fuzzer (tests/hardening/fuzzer.py) against the real daemon: no answer
is UNKNOWN or INTERNAL, the log holds no traceback, memory and descriptors stay bounded, a
normal chat works afterwards and the audit log verifies. The long run is bench/fuzz_daemon.py."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.hardening.fuzzer import Fuzzer, methods
from tests.helpers import MARKER, Daemon, chat, enclave, fds, rss_kib

pytestmark = pytest.mark.timeout(300)

CONFIG = """
[[models]]
name = "tiny"
n_ctx = 256
n_seq_max = 2
n_threads = 2

[[agents]]
name = "a1"
model = "tiny"
max_tokens = 8
seed = 1

[[agents]]
name = "a2"
model = "tiny"
max_tokens = 8
seed = 2

[[agents]]
name = "target"
model = "tiny"
max_tokens = 8
seed = 3
"""


def test_the_fuzzer_covers_every_rpc() -> None:
    assert len(methods()) == 22


def test_a_fuzzed_daemon_answers_every_call_properly_and_goes_on(daemon_factory: Callable[..., Daemon]) -> None:
    d = daemon_factory(CONFIG)
    assert chat(d.stubs(), "target", "warm up")[-1].HasField("finished")
    rss0, fds0 = rss_kib(d.proc.pid), fds(d.proc.pid)
    fuzzer = Fuzzer(d.socket, seed=14, names=["a1", "a2", "target", "new", MARKER], models=["tiny", "nope"], spare=["target"])
    try:
        outcome = fuzzer.run(300)
    finally:
        fuzzer.close()
    assert not outcome.bad, "\n".join(outcome.bad[:20])
    assert outcome.codes["OK"] > 50 and outcome.codes["INVALID_ARGUMENT"] > 20, outcome.codes

    assert chat(d.stubs(), "target", "after the fuzzer")[-1].HasField("finished")
    assert "Traceback" not in d.log and MARKER not in d.log, d.log[-3000:]
    assert fds(d.proc.pid) < fds0 + 32
    assert rss_kib(d.proc.pid) < rss0 + 200 * 1024
    r = enclave(d, "audit", "verify")
    assert r.returncode == 0 and r.stdout.startswith("ok"), r.stdout + r.stderr
    assert d.stop() == 0
