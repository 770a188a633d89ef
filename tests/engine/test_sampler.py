"""The sampler chain on SmolLM2: enclave's repeat penalty (applied to the logits of the tokens
in its window) must pick exactly the tokens llama.cpp's own penalties stage picks."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import llama_cpp as L
import pytest

from enclaved.llama import Context, ContextParams, Model, Sampler
from tests.helpers import REAL_MODELS

pytestmark = pytest.mark.skipif(not (REAL_MODELS / "smollm2.gguf").exists(), reason="needs `make models`")

LAST_N, PENALTY = 64, 1.3
WORDS = 'root ::= word (" " word)*\nword ::= [a-z]+'


@pytest.fixture(scope="module")
def smollm2() -> Iterator[Model]:
    model = Model(REAL_MODELS / "smollm2.gguf")
    yield model
    model.close()


def _llama_cpp_chain(model: Model, seed: int, seen: list[int], grammar: str) -> L.llama_sampler_p:
    """The chain as llama.cpp's common sampler builds it, penalties stage included."""
    chain = L.llama_sampler_chain_init(L.llama_sampler_chain_default_params())
    stages = [L.llama_sampler_init_grammar(model.vocab, grammar.encode(), b"root")] if grammar else []
    penalties = L.llama_sampler_init_penalties(model.n_vocab, LAST_N, PENALTY, 0.0, 0.0)
    for token in seen[-LAST_N:]:
        L.llama_sampler_accept(penalties, token)
    stages += [penalties, L.llama_sampler_init_top_k(40), L.llama_sampler_init_top_p(0.95, 1), L.llama_sampler_init_min_p(0.05, 1)]
    stages += [L.llama_sampler_init_temp(0.8), L.llama_sampler_init_dist(seed)]
    for stage in stages:
        L.llama_sampler_chain_add(chain, stage)
    return chain


def _generate(model: Model, prompt: list[int], sample: Callable[[Context, int], int], n: int) -> list[int]:
    ctx = Context(model, ContextParams(n_ctx_seq=512, n_seq_max=1, n_batch=256, n_threads=2))
    try:
        for i, token in enumerate(prompt):
            ctx.batch.add(token, i, 0, i == len(prompt) - 1)
        out, index, pos = [], len(prompt) - 1, len(prompt)
        for _ in range(n):
            assert ctx.decode() == 0
            token = sample(ctx, index)
            out.append(token)
            ctx.batch.clear()
            ctx.batch.add(token, pos, 0, True)
            index, pos = 0, pos + 1
        return out
    finally:
        ctx.close()


@pytest.mark.parametrize(("seed", "grammar"), [(1, ""), (7, ""), (3, WORDS)])
def test_the_repeat_penalty_picks_the_tokens_llama_cpps_penalties_stage_picks(smollm2: Model, seed: int, grammar: str) -> None:
    prompt = smollm2.tokenize("Say the same word many times: bread bread bread bread bread", add_special=True)
    ours = Sampler(
        smollm2,
        temperature=0.8,
        top_k=40,
        top_p=0.95,
        min_p=0.05,
        repeat_penalty=PENALTY,
        penalty_last_n=LAST_N,
        seed=seed,
        grammar=grammar,
        seen=prompt,
    )
    try:
        # more tokens than the window holds, so tokens leave it as well as enter it
        mine = _generate(smollm2, prompt, ours.sample, 2 * LAST_N + 8)
    finally:
        ours.close()
    chain = _llama_cpp_chain(smollm2, seed, prompt, grammar)
    try:
        reference = _generate(smollm2, prompt, lambda ctx, index: int(L.llama_sampler_sample(chain, ctx.ptr, index)), 2 * LAST_N + 8)
    finally:
        L.llama_sampler_free(chain)
    assert mine == reference
    unpenalized = Sampler(
        smollm2, temperature=0.8, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.0, penalty_last_n=LAST_N, seed=seed, grammar=grammar
    )
    try:
        assert _generate(smollm2, prompt, unpenalized.sample, 2 * LAST_N + 8) != mine  # the penalty did change the reply
    finally:
        unpenalized.close()
