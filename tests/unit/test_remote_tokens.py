"""Counting a remote model's tokens without its tokenizer, and fitting its conversation: the
estimate, the byte bound, the context a /v1/models entry names, and which messages go."""

from __future__ import annotations

from enclaved.domain.remoteprompt import fit
from enclaved.engine.remote.tokens import MESSAGE_OVERHEAD, PROMPT_OVERHEAD, context_of, estimate, upper_bound


def test_the_estimate_is_a_third_of_the_characters_and_the_bound_one_token_a_byte() -> None:
    assert estimate("") == 0 and estimate("abcd") == 2 and estimate("x" * 300) == 100
    assert upper_bound("abc") == 4 and upper_bound("日本") == 7  # three bytes a character, and a leading space


def test_the_context_comes_from_whichever_field_the_engine_sends() -> None:
    assert context_of({"id": "m", "max_model_len": 32768}) == 32768  # vLLM
    assert context_of({"id": "m", "context_length": 8192}) == 8192
    assert context_of({"id": "m", "meta": {"n_ctx_train": 4096}}) == 4096  # llama-server
    assert context_of({"id": "m", "owned_by": "me"}) == 0  # llama-cpp-python's server says nothing
    assert context_of({"id": "m", "max_model_len": True, "context_length": "big"}) == 0


def _size(counts: list[int]) -> int:
    return PROMPT_OVERHEAD + sum(counts) + MESSAGE_OVERHEAD * len(counts)


def test_fit_drops_whole_exchanges_from_the_oldest_end_until_the_rest_fits() -> None:
    counts = [50, 100, 100, 100, 100, 40]  # system, two exchanges, the new message
    assert fit(counts, 1, _size(counts)) == (0, _size(counts))
    assert fit(counts, 1, _size(counts) - 1) == (2, _size([50, 100, 100, 40]))
    assert fit(counts, 1, 10) == (4, _size([50, 40]))  # all of the history, never the system prompt or the message
    assert fit([100, 100, 100, 40], 0, _size([100, 40])) == (2, _size([100, 40]))
    assert fit([100, 40], 0, 0) == (1, _size([40]))  # an odd history (a lone reply) goes one message at the end
