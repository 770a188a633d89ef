"""Sampler chains: one per sequence, so penalties, truncation and the RNG are per stream."""

from __future__ import annotations

import ctypes
from collections import Counter, deque

import llama_cpp as L
import numpy as np

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


class RepeatPenalty:
    """llama.cpp's penalties stage (repeat penalty only) applied to a row of logits in place.

    llama.cpp's own stage looks up every token of the vocabulary in a hash map of the last
    ``last_n`` tokens: 0.3 ms a token for a 49k vocabulary, more than the rest of the chain
    and about 6% of a SmolLM2 token on 2 cores. Only the tokens in that window can change, so
    this touches just those (tens of µs), with the same float32 arithmetic and the same window,
    and the chain after it sees the very same logits."""

    def __init__(self, n_vocab: int, last_n: int, penalty: float, seen: list[int]) -> None:
        self._n_vocab = n_vocab
        self._penalty = np.float32(penalty)
        self._window: deque[int] = deque(maxlen=last_n)
        self._counts: Counter[int] = Counter()
        for token in seen[-last_n:]:
            self.accept(token)

    def accept(self, token: int) -> None:
        if len(self._window) == self._window.maxlen:
            old = self._window[0]
            self._counts[old] -= 1
            if not self._counts[old]:
                del self._counts[old]
        self._window.append(token)
        self._counts[token] += 1

    def apply(self, logits: ctypes._Pointer[ctypes.c_float]) -> None:
        """Penalize the window's tokens in the ``n_vocab`` floats at ``logits``."""
        if not self._counts:
            return
        row = np.ctypeslib.as_array(logits, shape=(self._n_vocab,))
        ids = np.fromiter(self._counts, dtype=np.int32, count=len(self._counts))
        values = row[ids]
        row[ids] = np.where(values <= 0, values * self._penalty, values / self._penalty)


class Sampler:
    """(grammar →) penalties → (greedy | top-k → top-p → min-p → temperature → dist), as
    llama.cpp's common sampler orders them; a stage that would change nothing is left out.

    A grammar (GBNF) goes first, so every later stage sees only the tokens it allows. The
    penalties are a ``RepeatPenalty`` applied to the logits just before the chain reads them:
    the grammar sets the tokens it forbids to -inf, which a penalty leaves at -inf, so the
    order of those two changes nothing. The prompt the penalties must count (``seen``) goes
    into that window alone, never into the chain, where it would advance the grammar too."""

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
        self._penalty = (
            RepeatPenalty(model.n_vocab, penalty_last_n, repeat_penalty, seen or [])
            if repeat_penalty != 1.0 and penalty_last_n > 0
            else None
        )
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
        if self._penalty is None:
            return int(L.llama_sampler_sample(self._ptr, ctx.ptr, index))
        self._penalty.apply(L.llama_get_logits_ith(ctx.ptr, index))
        token = int(L.llama_sampler_sample(self._ptr, ctx.ptr, index))
        self._penalty.accept(token)
        return token

    def close(self) -> None:
        if self._ptr:
            L.llama_sampler_free(self._ptr)
            self._ptr = None
