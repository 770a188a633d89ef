"""Team members take turns on one model: each must go on in its own KV sequence, not evict the
other's because their prompts share a system header (real llama.cpp, SmolLM2)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from enclaved.engine import Engine, EngineConfig, Request, SamplingSettings
from enclaved.llama import Model
from tests.helpers import REAL_MODELS
from tests.teams.test_grammar import Sink

pytestmark = pytest.mark.skipif(not (REAL_MODELS / "smollm2.gguf").exists(), reason="needs `make models`")


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    model = Model(REAL_MODELS / "smollm2.gguf")
    e = Engine(model, EngineConfig(n_ctx_seq=512, n_seq_max=3, n_threads=2))
    e.start()
    yield e
    e.close()
    model.close()


def _turn(engine: Engine, owner: str, conversation: str) -> tuple[list[int], int]:
    return _turn_tokens(engine, owner, engine.model.tokenize(conversation, add_special=True))


@pytest.mark.parametrize("owners", [("writer", "critic"), ("", "")], ids=["owners-said", "owners-unsaid"])
def test_agents_that_take_turns_keep_their_own_sequences(engine: Engine, owners: tuple[str, str]) -> None:
    header = "<|im_start|>system\nYou are on a team.<|im_end|>\n"
    a, b = owners
    said_a, _ = _turn(engine, a, f"{header}<|im_start|>user\nWrite about bread {a}.<|im_end|>\n<|im_start|>assistant\n")
    said_b, _ = _turn(engine, b, f"{header}<|im_start|>user\nCriticise this {b}.<|im_end|>\n<|im_start|>assistant\n")
    # the writer goes on from what its sequence holds: all of it is cached, though the critic
    # (whose prompt shares the header) spoke in between
    _, cached = _turn_tokens(
        engine, a, said_a + engine.model.tokenize("<|im_end|>\n<|im_start|>user\nMore.<|im_end|>\n", add_special=False)
    )
    assert cached >= len(said_a) - 1
    _, cached = _turn_tokens(
        engine, b, said_b + engine.model.tokenize("<|im_end|>\n<|im_start|>user\nMore.<|im_end|>\n", add_special=False)
    )
    assert cached >= len(said_b) - 1


def _turn_tokens(engine: Engine, owner: str, prompt: list[int]) -> tuple[list[int], int]:
    sink = Sink()
    engine.submit(Request(prompt, SamplingSettings(temperature=0.0), 8, [], sink, owner=owner))
    _, result = sink.result()
    return prompt + list(result.tokens), result.cached_prompt_tokens
