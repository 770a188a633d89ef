"""Grammar-constrained sampling in the engine, on the real SmolLM2: whatever the model would
rather say, the text it produces is one the grammar allows."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from enclaved import engine as eng
from enclaved.engine import Engine, EngineConfig, Request, SamplingSettings
from enclaved.llama import GrammarError, Model
from tests.helpers import REAL_MODELS

pytestmark = pytest.mark.skipif(not (REAL_MODELS / "smollm2.gguf").exists(), reason="needs `make models`")


@dataclass
class Sink:
    events: list[eng.EngineEvent] = field(default_factory=list)
    finished: threading.Event = field(default_factory=threading.Event)

    def __call__(self, ev: eng.EngineEvent) -> None:
        self.events.append(ev)
        if isinstance(ev, (eng.TurnResult, eng.Failed)):
            self.finished.set()

    def result(self) -> tuple[str, eng.TurnResult]:
        assert self.finished.wait(60), "request did not finish"
        last = self.events[-1]
        assert isinstance(last, eng.TurnResult), last
        return "".join(e.text for e in self.events if isinstance(e, eng.Text)), last


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    model = Model(REAL_MODELS / "smollm2.gguf")
    e = Engine(model, EngineConfig(n_ctx_seq=512, n_seq_max=2, n_threads=2))
    e.start()
    yield e
    e.close()
    model.close()


def _ask(
    engine: Engine, text: str, grammar: str, *, temperature: float = 0.8, seed: int = 7, max_tokens: int = 24
) -> tuple[str, eng.TurnResult]:
    prompt = engine.model.tokenize(f"<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n", add_special=True)
    sink = Sink()
    engine.submit(Request(prompt, SamplingSettings(temperature=temperature, seed=seed, grammar=grammar), max_tokens, [], sink))
    return sink.result()


def test_a_choice_grammar_allows_only_its_words_whatever_the_seed(engine: Engine) -> None:
    grammar = 'root ::= "alice" | "bob" | "DONE"'
    for seed in range(4):
        text, result = _ask(engine, "Write a long poem about the sea.", grammar, temperature=1.5, seed=seed)
        assert text in {"alice", "bob", "DONE"}, text
        assert result.finish is eng.Finish.END_OF_TURN  # the grammar is complete: only the end can follow


def test_a_verdict_grammar_gives_a_word_and_a_one_line_reason(engine: Engine) -> None:
    grammar = 'root ::= ("allow" | "block") ": " [^\\n]*'
    text, _ = _ask(engine, "Is it fine to share a recipe for bread?", grammar, max_tokens=16)
    assert re.fullmatch(r"(allow|block): [^\n]*", text), text


def test_without_a_grammar_the_model_says_what_it_likes(engine: Engine) -> None:
    text, _ = _ask(engine, "Say hello.", "", temperature=0.0)
    assert text and text not in {"alice", "bob", "DONE"}


def test_a_grammar_llama_cpp_cannot_parse_is_refused_before_it_queues(engine: Engine) -> None:
    with pytest.raises(GrammarError):
        _ask(engine, "hi", "root ::= (")
    text, _ = _ask(engine, "hi", 'root ::= "ok"')  # the engine still serves
    assert text == "ok"
