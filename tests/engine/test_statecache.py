"""The state cache on SmolLM2 (real llama.cpp): a conversation whose slot another took comes
back from the cache, and one whose saved state llama.cpp refuses (``llama_state_seq_set_data``
returns 0: here the saved bytes are cut short) is read again from its prompt and answers the
same as if it had never been cached."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from enclaved import engine as eng
from enclaved.engine import Engine, EngineConfig, Request, SamplingSettings
from enclaved.engine.statecache import SavedState
from enclaved.llama import Model
from tests.engine.test_engine import Collector
from tests.helpers import REAL_MODELS

SYSTEM = "<|im_start|>system\nYou are a patient teacher. " + "Answer in one short sentence. " * 12 + "<|im_end|>\n"


def turn(text: str) -> str:
    return f"<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def smollm2() -> Iterator[Model]:
    m = Model(REAL_MODELS / "smollm2.gguf")
    yield m
    m.close()


def ask(engine: Engine, model: Model, tokens: list[int]) -> eng.TurnResult:
    sink = Collector()
    engine.submit(Request(prompt=tokens, sampling=SamplingSettings(temperature=0.0, seed=1), max_tokens=16, stops=[], sink=sink))
    return sink.done


def engine(model: Model, state_cache_bytes: int) -> Engine:
    e = Engine(model, EngineConfig(n_ctx_seq=1024, n_seq_max=1, n_threads=2, state_cache_bytes=state_cache_bytes))
    e.start()
    return e


def chat(model: Model, system: str, text: str) -> list[int]:
    return model.tokenize(system + turn(text), add_special=True, parse_special=True)


def more(model: Model, text: str) -> list[int]:
    """A user message after a reply (the end of the reply's turn, then the message)."""
    return model.tokenize("<|im_end|>\n" + turn(text), add_special=False, parse_special=True)


@pytest.mark.parametrize("corrupt", [False, True], ids=["restored", "restore-fails"])
def test_a_state_that_cannot_be_restored_is_read_again(smollm2: Model, corrupt: bool, caplog: pytest.LogCaptureFixture) -> None:
    cached = engine(smollm2, 64 << 20)
    reference = engine(smollm2, 0)
    try:
        first = chat(smollm2, SYSTEM, "What is a river?")
        reply = ask(cached, smollm2, first)  # agent x
        ask(cached, smollm2, chat(smollm2, "<|im_start|>system\nBe brief.<|im_end|>\n", "Name a colour."))  # y takes the one slot
        states = cached._states
        assert states is not None and len(states) == 1, "x's state went to the cache when y took the slot"
        if corrupt:  # llama.cpp reads a cut-short state as an error and returns 0
            with cached._lock:
                for key, saved in list(states._entries.items()):
                    states._entries[key] = SavedState(saved.tokens, saved.data[: len(saved.data) // 2])
        follow_up = [*first, *reply.tokens, *more(smollm2, "And what is a lake?")]
        with caplog.at_level(logging.WARNING, logger="enclaved.engine"):
            back = ask(cached, smollm2, follow_up)
        restore_failed = "could not be restored" in caplog.text
        if corrupt:
            assert restore_failed and back.cached_prompt_tokens == 0, (back, caplog.text)
        else:  # a restored state is the sequence as it was: as if x had never lost its slot
            assert not restore_failed and back.cached_prompt_tokens >= len(first), back
            assert ask(reference, smollm2, first).tokens == reply.tokens
        expected = ask(reference, smollm2, follow_up)  # restore-fails: the same prompt read from scratch
        assert back.finish is expected.finish and back.tokens == expected.tokens, (back, expected)
        assert back.completion_tokens > 0
        # the engine goes on: x speaks again and its (restored or re-read) cells are reused
        again = ask(cached, smollm2, [*follow_up, *back.tokens, *more(smollm2, "Thanks.")])
        assert again.cached_prompt_tokens >= len(follow_up)
    finally:
        cached.close()
        reference.close()


def test_a_shared_system_prompt_is_copied_into_an_empty_slot_not_taken_from_its_conversation(smollm2: Model) -> None:
    """Agents x and y share a long system prompt. y's first turn goes on from x's cells, copied
    into an empty slot (``llama_memory_seq_cp``): y finds the shared prompt cached, and x's
    next turn still finds its whole conversation where it was. The replies are those of an
    engine that evaluates every prompt afresh."""
    e = Engine(smollm2, EngineConfig(n_ctx_seq=1024, n_seq_max=2, n_threads=2, state_cache_bytes=0))
    e.start()
    reference = engine(smollm2, 0)

    def speak(engine_: Engine, owner: str, tokens: list[int]) -> eng.TurnResult:
        sink = Collector()
        sampling = SamplingSettings(temperature=0.0, seed=1)
        engine_.submit(Request(prompt=tokens, sampling=sampling, max_tokens=16, stops=[], sink=sink, owner=owner))
        return sink.done

    try:
        x1 = chat(smollm2, SYSTEM, "What is a river?")
        x_reply = speak(e, "x", x1)
        y1 = chat(smollm2, SYSTEM, "What is a cloud?")
        y_reply = speak(e, "y", y1)
        system = len(smollm2.tokenize(SYSTEM, add_special=True, parse_special=True))
        assert y_reply.cached_prompt_tokens >= system, y_reply
        assert y_reply.tokens == speak(reference, "y", y1).tokens, "the copied cells answer as evaluated ones"
        x2 = [*x1, *x_reply.tokens, *more(smollm2, "And a lake?")]
        back = speak(e, "x", x2)
        assert back.cached_prompt_tokens >= len(x1) + len(x_reply.tokens) - 1, "x's slot kept its whole conversation"
        assert back.tokens == speak(reference, "x", x2).tokens
    finally:
        e.close()
        reference.close()
