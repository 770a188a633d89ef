"""The batching engine on the real llama.cpp with generated models."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import llama_cpp
import pytest

from enclaved import engine as eng
from enclaved.engine import Engine, EngineConfig, Finish, Request, SamplingSettings, scheduler
from enclaved.llama import Model

TIMEOUT = 60


@dataclass
class Collector:
    """Receives one request's events on the scheduler thread."""

    events: list[eng.EngineEvent] = field(default_factory=list)
    finished: threading.Event = field(default_factory=threading.Event)
    log: list[tuple[str, eng.EngineEvent]] | None = None
    name: str = ""

    def __call__(self, ev: eng.EngineEvent) -> None:
        self.events.append(ev)
        if self.log is not None:
            self.log.append((self.name, ev))
        if isinstance(ev, (eng.TurnResult, eng.Failed)):
            self.finished.set()

    @property
    def text(self) -> str:
        return "".join(e.text for e in self.events if isinstance(e, eng.Text))

    @property
    def done(self) -> eng.TurnResult:
        assert self.finished.wait(TIMEOUT), "request did not finish"
        last = self.events[-1]
        assert isinstance(last, eng.TurnResult), last
        return last


@pytest.fixture(scope="module")
def tiny(model_dir: Path) -> Iterator[Model]:
    m = Model(model_dir / "tiny.gguf")
    yield m
    m.close()


@pytest.fixture
def make_engine(tiny: Model) -> Iterator[callable]:
    engines: list[Engine] = []

    def make(model: Model = tiny, **kw: int) -> Engine:
        cfg = dict(n_ctx_seq=1024, n_seq_max=4, n_threads=2)
        cfg.update(kw)
        e = Engine(model, EngineConfig(**cfg))
        e.start()
        engines.append(e)
        return e

    yield make
    for e in engines:
        e.close()


def request(
    model: Model,
    text: str,
    sink: Collector,
    *,
    max_tokens: int = 32,
    seed: int = 1,
    temperature: float = 0.8,
    stops: list[str] | None = None,
) -> Request:
    return Request(
        prompt=model.tokenize(text, add_special=True),
        sampling=SamplingSettings(seed=seed, temperature=temperature),
        max_tokens=max_tokens,
        stops=stops or [],
        sink=sink,
    )


def test_four_sequences_decode_in_one_batch(tiny: Model, make_engine: callable) -> None:
    engine = make_engine()
    sinks = [Collector() for _ in range(4)]
    for i, s in enumerate(sinks):
        engine.submit(request(tiny, f"agent {i} says", s, max_tokens=64, seed=i))
    for s in sinks:
        assert s.done.finish is Finish.MAX_TOKENS
        assert s.done.completion_tokens == 64
        assert s.text
        assert isinstance(s.events[0], eng.Admitted)
    stats = engine.stats()
    assert stats.tokens_generated == 256
    assert stats.occupancy > 2, "the four sequences should mostly share each llama_decode"
    assert stats.active == 0 and stats.queued == 0
    assert stats.decode_tps > 0 and stats.prompt_tps > 0, "recent work shows as rates"


def test_more_requests_than_slots_wait_in_fifo_order(tiny: Model, make_engine: callable) -> None:
    engine = make_engine(n_seq_max=2, n_ctx_seq=2048)
    order: list[tuple[str, eng.EngineEvent]] = []
    sinks = [Collector(log=order, name=str(i)) for i in range(5)]
    # the first two hold both slots long enough for the other three to queue behind them
    lengths = [1500, 1500, 16, 16, 16]
    positions = [engine.submit(request(tiny, f"q{i}", s, max_tokens=n)) for i, (s, n) in enumerate(zip(sinks, lengths))]
    assert positions == [0, 0, 1, 2, 3]
    for s, n in zip(sinks, lengths):
        assert s.done.completion_tokens == n
    admitted = [name for name, ev in order if isinstance(ev, eng.Admitted)]
    assert admitted == ["0", "1", "2", "3", "4"]


def test_long_prompt_is_prefilled_in_chunks_while_others_generate(
    tiny: Model, make_engine: callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scheduler, "COALESCE_SECONDS", 0.0)  # see every token as it is sampled
    engine = make_engine(n_ctx_seq=4096, prefill_chunk=32, n_batch=512)
    order: list[tuple[str, eng.EngineEvent]] = []
    short = Collector(log=order, name="short")
    long = Collector(log=order, name="long")
    engine.submit(request(tiny, "short prompt", short, max_tokens=400))
    while not any(isinstance(e, eng.Text) for e in short.events):
        short.finished.wait(0.001)
    engine.submit(request(tiny, "word " * 500, long, max_tokens=4))
    assert long.done.prompt_tokens > 1500
    start = next(i for i, (n, e) in enumerate(order) if n == "long" and isinstance(e, eng.Admitted))
    end = next(i for i, (n, e) in enumerate(order) if n == "long" and isinstance(e, eng.Generating))
    during = [e for n, e in order[start:end] if n == "short" and isinstance(e, eng.Text)]
    # 1500+ prompt tokens in chunks of 32 take 47+ steps; the short one gets a token in each
    assert len(during) >= 30, f"only {len(during)} tokens of the other sequence during the long prefill"
    assert short.done.completion_tokens == 400


def test_cancel_spares_the_others_and_keeps_the_cache_for_the_conversation_to_go_on(tiny: Model, make_engine: callable) -> None:
    engine = make_engine(n_ctx_seq=4096)
    victim, bystander = Collector(), Collector()
    victim_req = replace(request(tiny, "cancel me", victim, max_tokens=100_000), owner="victim")
    engine.submit(victim_req)
    engine.submit(request(tiny, "keep going", bystander, max_tokens=300))
    while not any(isinstance(e, eng.Text) for e in victim.events):
        victim.finished.wait(0.001)
    engine.cancel(victim_req)
    assert victim.done.finish is Finish.CANCELLED
    assert 0 < victim.done.completion_tokens < 100_000
    assert bystander.done.finish is Finish.MAX_TOKENS
    assert bystander.done.completion_tokens == 300
    memory = engine.ctx.memory
    slots_in_use = [s for s in range(4) if llama_cpp.llama_memory_seq_pos_max(memory, s) >= 0]
    assert len(slots_in_use) == 2, "the cancelled sequence keeps its cells, as a finished one does"
    # the conversation's next turn (its prompt, the partial reply, a new message) reads only what is new
    follow = Collector()
    prompt = [*victim_req.prompt, *victim.done.tokens, *tiny.tokenize(" and then?", add_special=False)]
    engine.submit(replace(request(tiny, "", follow, max_tokens=4), prompt=prompt, owner="victim"))
    assert follow.done.finish is Finish.MAX_TOKENS
    admitted = next(e for e in follow.events if isinstance(e, eng.Admitted))
    assert admitted.cached_tokens >= len(victim_req.prompt) + victim.done.completion_tokens - 1


def test_cancel_while_queued(tiny: Model, make_engine: callable) -> None:
    engine = make_engine(n_seq_max=1, n_ctx_seq=4096)
    first, queued = Collector(), Collector()
    engine.submit(request(tiny, "busy", first, max_tokens=2000))
    queued_req = request(tiny, "waiting", queued)
    assert engine.submit(queued_req) == 1
    engine.cancel(queued_req)
    assert queued.done.finish is Finish.CANCELLED
    assert queued.done.completion_tokens == 0
    assert not any(isinstance(e, eng.Admitted) for e in queued.events)
    assert first.done.finish is Finish.MAX_TOKENS


def test_end_of_generation_token_stops(model_dir: Path, make_engine: callable) -> None:
    eos_model = Model(model_dir / "eos.gguf")
    try:
        engine = make_engine(eos_model)
        s = Collector()
        engine.submit(request(eos_model, "anything", s, max_tokens=50))
        assert s.done.finish is Finish.END_OF_TURN
        assert s.done.completion_tokens == 0
        engine.close()
    finally:
        eos_model.close()


def test_stop_string_ends_the_reply_before_it(tiny: Model, make_engine: callable) -> None:
    engine = make_engine()
    free = Collector()
    engine.submit(request(tiny, "the river", free, max_tokens=40, temperature=0.0))
    assert free.done.finish is Finish.MAX_TOKENS
    text = free.text
    assert len(text) > 20
    stop = text[10:14]
    expected = text[: text.index(stop)]
    stopped = Collector()
    engine.submit(request(tiny, "the river", stopped, max_tokens=40, temperature=0.0, stops=[stop]))
    assert stopped.done.finish is Finish.STOP_STRING
    assert stopped.text == expected


def test_sequence_stops_at_the_end_of_its_context(tiny: Model, make_engine: callable) -> None:
    engine = make_engine(n_ctx_seq=256, n_seq_max=1)
    s = Collector()
    req = request(tiny, "fill the context", s, max_tokens=100_000)
    engine.submit(req)
    done = s.done
    assert done.finish is Finish.CONTEXT_FULL
    # every position holds a token; the last one sampled is returned but never decoded
    assert done.prompt_tokens + done.completion_tokens == engine.n_ctx_seq + 1


def test_prompt_longer_than_the_sequence_is_refused(tiny: Model, make_engine: callable) -> None:
    engine = make_engine(n_ctx_seq=256, n_seq_max=1)
    with pytest.raises(ValueError, match="does not fit"):
        engine.submit(request(tiny, "word " * 400, Collector()))


def test_prompt_prefix_is_reused_from_the_kv_cache(tiny: Model, make_engine: callable) -> None:
    engine = make_engine()
    first = Collector()
    engine.submit(request(tiny, "a shared system prompt and the first question", first, max_tokens=8))
    assert first.done.cached_prompt_tokens == 0
    second = Collector()
    engine.submit(request(tiny, "a shared system prompt and the first question plus more", second, max_tokens=8))
    done = second.done
    assert done.cached_prompt_tokens >= 8
    assert done.cached_prompt_tokens < done.prompt_tokens


def test_same_seed_alone_gives_the_same_text(tiny: Model, make_engine: callable) -> None:
    engine = make_engine(n_seq_max=1)
    a, b = Collector(), Collector()
    engine.submit(request(tiny, "repeatable", a, max_tokens=24, seed=7))
    assert a.done.completion_tokens == 24  # the first ends before the second starts
    engine.submit(request(tiny, "repeatable", b, max_tokens=24, seed=7))
    assert b.done.completion_tokens == 24
    assert a.text == b.text


def test_the_batch_holds_sequences_in_the_order_of_their_ids(tiny: Model, make_engine: callable) -> None:
    """With a KV stream per sequence, llama.cpp passes only sequences with consecutive ids
    through the model together: four sequences admitted in reverse order still share a pass."""
    engine = make_engine()
    texts = [f"agent {i} has a system prompt long enough to be found again" for i in range(4)]
    warm = [Collector() for _ in texts]
    for text, sink in zip(texts, warm):
        engine.submit(request(tiny, text, sink, max_tokens=4))
    for sink in warm:
        assert sink.done.finish is Finish.MAX_TOKENS
    batches: list[list[int]] = []
    decode = engine.ctx.decode

    def recording() -> int:
        batch = engine.ctx.batch
        batches.append([int(s) for s in batch.seq[: batch.n_tokens]])
        return decode()

    engine.ctx.decode = recording
    sinks = [Collector() for _ in texts]
    for text, sink in zip(reversed(texts), sinks):  # each back to the slot that holds its prefix
        engine.submit(request(tiny, text + " and more", sink, max_tokens=64))
    for sink in sinks:
        assert sink.done.cached_prompt_tokens > 0
    assert all(ids == sorted(ids) for ids in batches), batches
    assert [0, 1, 2, 3] in batches, "the four generate in one pass"
