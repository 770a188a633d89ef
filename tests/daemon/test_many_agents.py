"""Sixteen agents on four sequence slots of SmolLM2, taking turns: each comes back to a slot
another agent took, and its conversation is restored from the state cache instead of read again."""

from __future__ import annotations

import pytest

from enclave_contract.v1 import status_pb2
from tests.daemon.test_real_models import _turn
from tests.helpers import REAL_MODELS, short_tmpdir, start_daemon

pytestmark = pytest.mark.timeout(600)

AGENTS = [f"agent{i:02d}" for i in range(16)]
FILLER = "Answer in a few words. " * 12  # a history worth keeping (the cache skips very short ones)

CONFIG = """
[[models]]
name = "smollm2"
n_ctx = 512
n_seq_max = 4
n_threads = 2
state_cache = "128MiB"
""" + "".join(
    f'\n[[agents]]\nname = "{name}"\nmodel = "smollm2"\nsystem = "You are {name}. {FILLER}"\ntemperature = 0.0\nmax_tokens = 12\n'
    for name in AGENTS
)


def test_sixteen_agents_on_four_slots_come_back_warm() -> None:
    d = start_daemon(short_tmpdir(), REAL_MODELS, CONFIG)
    try:
        histories = {}
        for name in AGENTS:  # every agent speaks once: twelve of them lose their slot
            _, finished, _ = _turn(d, name, f"Name a colour, {name}.")
            histories[name] = finished.usage.prompt_tokens + finished.usage.completion_tokens
        snapshot = next(iter(d.stubs().status.Status(status_pb2.StatusRequest(once=True), timeout=30)))
        model = next(m for m in snapshot.models if m.name == "smollm2")
        assert model.state_cache_entries >= 12, "the twelve agents whose slot was taken are kept"
        for name in AGENTS:  # and each comes back: its history is not read again
            _, finished, _ = _turn(d, name, "And another?")
            assert finished.usage.cached_prompt_tokens >= 0.9 * histories[name], (name, finished.usage, histories[name])
    finally:
        d.stop()
