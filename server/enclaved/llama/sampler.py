"""Sampler chains: one per sequence, so penalties, truncation and the RNG are per stream."""

from __future__ import annotations

import llama_cpp as L

from enclaved.llama.context import Context
from enclaved.llama.model import Model


class GrammarError(ValueError):
    """llama.cpp could not parse a GBNF grammar."""


def check_grammar(model: Model, grammar: str) -> None:
    """Raise ``GrammarError`` unless llama.cpp parses ``grammar`` (GBNF, rule ``root``)."""
    ptr = L.llama_sampler_init_grammar(model.vocab, grammar.encode(), b"root")
    if not ptr:
        raise GrammarError("the grammar is not valid GBNF with a root rule")
    L.llama_sampler_free(ptr)


class Sampler:
    """(grammar →) penalties → (greedy | top-k → top-p → min-p → temperature → dist), as
    llama.cpp's common sampler orders them; a stage that would change nothing is left out.

    A grammar (GBNF) goes first, so every later stage sees only the tokens it allows. The
    prompt the penalties must count (``seen``) is accepted into the penalties stage alone,
    before it joins the chain: accepted into the chain, it would advance the grammar too."""

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
        grammar: str = "",
        seen: list[int] | None = None,
    ) -> None:
        self._ptr = L.llama_sampler_chain_init(L.llama_sampler_chain_default_params())
        add = lambda smpl: L.llama_sampler_chain_add(self._ptr, smpl)  # noqa: E731
        if grammar:
            constrained = L.llama_sampler_init_grammar(model.vocab, grammar.encode(), b"root")
            if not constrained:
                self.close()
                raise GrammarError("the grammar is not valid GBNF with a root rule")
            add(constrained)
        self.penalized = repeat_penalty != 1.0
        if self.penalized:
            penalties = L.llama_sampler_init_penalties(model.n_vocab, penalty_last_n, repeat_penalty, 0.0, 0.0)
            for token in (seen or [])[-penalty_last_n:] if penalty_last_n > 0 else []:
                L.llama_sampler_accept(penalties, token)
            add(penalties)
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

    def sample(self, ctx: Context, index: int) -> int:
        """Sample from the logits of batch position ``index`` and accept the token."""
        return int(L.llama_sampler_sample(self._ptr, ctx.ptr, index))

    def close(self) -> None:
        if self._ptr:
            L.llama_sampler_free(self._ptr)
            self._ptr = None
