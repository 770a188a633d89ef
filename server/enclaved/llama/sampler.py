"""Sampler chains: one per sequence, so penalties, truncation and the RNG are per stream."""

from __future__ import annotations

import llama_cpp as L

from enclaved.llama.context import Context
from enclaved.llama.model import Model


class Sampler:
    """penalties → (greedy | top-k → top-p → min-p → temperature → dist), as llama.cpp's
    common sampler orders them; a stage that would change nothing is left out."""

    def __init__(
        self,
        model: Model,
        *,
        temperature: float,
        top_k: int,
        top_p: float,
        min_p: float,
        repeat_penalty: float,
        penalty_last_n: int,
        seed: int,
    ) -> None:
        self._ptr = L.llama_sampler_chain_init(L.llama_sampler_chain_default_params())
        add = lambda smpl: L.llama_sampler_chain_add(self._ptr, smpl)  # noqa: E731
        self.penalized = repeat_penalty != 1.0
        if self.penalized:
            add(L.llama_sampler_init_penalties(model.n_vocab, penalty_last_n, repeat_penalty, 0.0, 0.0))
        if temperature <= 0:
            add(L.llama_sampler_init_greedy())
            return
        if top_k > 0:
            add(L.llama_sampler_init_top_k(top_k))
        if top_p < 1.0:
            add(L.llama_sampler_init_top_p(top_p, 1))
        if min_p > 0.0:
            add(L.llama_sampler_init_min_p(min_p, 1))
        add(L.llama_sampler_init_temp(temperature))
        add(L.llama_sampler_init_dist(seed))

    def accept(self, tokens: list[int]) -> None:
        """Tell the chain about tokens it did not sample (the prompt), so the penalties count them."""
        for token in tokens:
            L.llama_sampler_accept(self._ptr, token)

    def sample(self, ctx: Context, index: int) -> int:
        """Sample from the logits of batch position ``index`` and accept the token."""
        return int(L.llama_sampler_sample(self._ptr, ctx.ptr, index))

    def close(self) -> None:
        if self._ptr:
            L.llama_sampler_free(self._ptr)
            self._ptr = None
