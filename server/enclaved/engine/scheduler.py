"""Continuous batching on one llama context, driven by one scheduler thread per loaded model.

Each step the scheduler builds one batch that holds the next token of every generating
sequence plus chunks of waiting prompts (chunked prefill), calls ``llama_decode`` once, and
samples every sequence that produced logits with its own sampler chain. This is the shape of
llama.cpp's own server. Requests beyond the sequence slots wait in a FIFO queue.

Nothing here knows about asyncio or gRPC: a request carries a ``sink`` callable that the
scheduler thread calls with ``EngineEvent``s; the caller makes it thread-safe.
"""

from __future__ import annotations

import collections
import ctypes
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from enclaved.engine.textstream import TextStream
from enclaved.llama import Context, ContextParams, Model, Sampler, SamplingSettings

log = logging.getLogger("enclaved.engine")

COALESCE_SECONDS = 0.02  # text of one sequence is sent at most this often (the first at once)
RATE_WINDOW_SECONDS = 5.0


class Finish(Enum):
    END_OF_TURN = "end_of_turn"
    MAX_TOKENS = "max_tokens"
    STOP_STRING = "stop_string"
    CANCELLED = "cancelled"
    CONTEXT_FULL = "context_full"


@dataclass(frozen=True)
class Admitted:
    """The request got a sequence slot; prompt evaluation starts."""

    cached_tokens: int


@dataclass(frozen=True)
class Text:
    text: str
    tokens: int


@dataclass(frozen=True)
class Generating:
    """The prompt is evaluated; the first token was sampled."""


@dataclass(frozen=True)
class Done:
    finish: Finish
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    queue_seconds: float
    prompt_seconds: float
    generation_seconds: float
    first_token_seconds: float  # from submit to the first token; 0 if none


@dataclass(frozen=True)
class Failed:
    message: str


EngineEvent = Admitted | Generating | Text | Done | Failed
Sink = Callable[[EngineEvent], None]


@dataclass
class Request:
    prompt: list[int]
    sampling: SamplingSettings
    max_tokens: int
    stops: list[str]
    sink: Sink
    id: int = field(default_factory=itertools.count(1).__next__)
    cancelled: bool = False
    submitted_at: float = field(default_factory=time.monotonic)


@dataclass
class _Sequence:
    """A request occupying a slot."""

    req: Request
    slot: _Slot
    sampler: Sampler
    text: TextStream
    pending: list[int]  # prompt tokens not yet decoded
    cached: int
    admitted_at: float
    pos: int = 0
    logits_index: int = -1  # batch index whose logits to sample this step, or -1
    next_token: int | None = None  # sampled, to be decoded next step
    generated: int = 0
    first_token_at: float = 0.0
    out_text: str = ""
    out_tokens: int = 0
    last_flush: float = 0.0


@dataclass
class _Slot:
    seq_id: int
    tokens: list[int] = field(default_factory=list)  # what the KV cache of this sequence holds
    last_used: float = 0.0
    busy: bool = False


@dataclass(frozen=True)
class EngineStats:
    active: int
    queued: int
    decode_tps: float
    prompt_tps: float
    tokens_generated: int
    occupancy: float


@dataclass(frozen=True)
class EngineConfig:
    n_ctx_seq: int
    n_seq_max: int
    n_threads: int
    n_batch: int = 512
    prefill_chunk: int = 256  # prompt tokens per step while other sequences generate


class Engine:
    def __init__(self, model: Model, config: EngineConfig, name: str = "") -> None:
        self.model = model
        self.config = config
        self.ctx = Context(
            model,
            ContextParams(
                n_ctx_seq=config.n_ctx_seq,
                n_seq_max=config.n_seq_max,
                n_batch=config.n_batch,
                n_threads=config.n_threads,
            ),
        )
        self.n_ctx_seq = self.ctx.n_ctx_seq
        self._slots = [_Slot(i) for i in range(self.ctx.n_seq_max)]
        self._waiting: collections.deque[Request] = collections.deque()
        self._active: list[_Sequence] = []
        self._cond = threading.Condition()
        self._stopping = False
        self._piece_buf = ctypes.create_string_buffer(256)
        # (step end, tokens, step seconds) of recent steps, for the rates in stats()
        self._decode_log: collections.deque[tuple[float, int, float]] = collections.deque()
        self._prompt_log: collections.deque[tuple[float, int, float]] = collections.deque()
        self._occupancy_log: collections.deque[int] = collections.deque(maxlen=64)
        self._generated_total = 0
        self._thread = threading.Thread(target=self._run, name=f"engine-{name}", daemon=True)
        self._thread.start()

    # ---- API for other threads -------------------------------------------------------------

    def submit(self, req: Request) -> int:
        """Queue a request; returns its position in the queue (0 = a slot is free now)."""
        if not 0 < len(req.prompt) < self.n_ctx_seq:
            raise ValueError(f"prompt of {len(req.prompt)} tokens does not fit a {self.n_ctx_seq}-token sequence")
        with self._cond:
            if self._stopping:
                raise RuntimeError("engine is closed")
            self._waiting.append(req)
            self._cond.notify()
            free = sum(not s.busy for s in self._slots)
            return max(0, len(self._waiting) - free)

    def cancel(self, req: Request) -> None:
        """Stop a request at the next step; its KV cells are freed then."""
        with self._cond:
            req.cancelled = True
            self._cond.notify()

    def stats(self) -> EngineStats:
        with self._cond:
            now = time.monotonic()
            return EngineStats(
                active=len(self._active),
                queued=len(self._waiting),
                decode_tps=_rate(self._decode_log, now),
                prompt_tps=_rate(self._prompt_log, now),
                tokens_generated=self._generated_total,
                occupancy=(sum(self._occupancy_log) / len(self._occupancy_log)) if self._occupancy_log else 0.0,
            )

    @property
    def busy(self) -> bool:
        with self._cond:
            return bool(self._active or self._waiting)

    def close(self) -> None:
        """Cancel everything, stop the thread and free the context."""
        with self._cond:
            self._stopping = True
            for req in self._waiting:
                req.cancelled = True
            for seq in self._active:
                seq.req.cancelled = True
            self._cond.notify()
        self._thread.join()
        self.ctx.close()

    # ---- scheduler thread ------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while not (self._waiting or self._active or self._stopping):
                        self._cond.wait()
                    if self._stopping and not self._waiting and not self._active:
                        return
                    self._drop_cancelled()
                    self._admit()
                if self._active:
                    self._step()
        except Exception:  # a bug here must not leave clients waiting forever
            log.exception("engine scheduler crashed")
            with self._cond:
                self._stopping = True
                for seq in self._active:
                    seq.req.sink(Failed("the model's engine stopped after an internal error; reload the model"))
                for req in self._waiting:
                    req.sink(Failed("the model's engine stopped after an internal error; reload the model"))
                self._active.clear()
                self._waiting.clear()

    def _drop_cancelled(self) -> None:
        for req in [r for r in self._waiting if r.cancelled]:
            self._waiting.remove(req)
            req.sink(self._done(req, Finish.CANCELLED, None))
        for seq in [s for s in self._active if s.req.cancelled]:
            self._finish(seq, Finish.CANCELLED)

    def _admit(self) -> None:
        now = time.monotonic()
        while self._waiting:
            free = [s for s in self._slots if not s.busy]
            if not free:
                return
            req = self._waiting.popleft()
            slot = max(free, key=lambda s: (_common_prefix(s.tokens, req.prompt), -s.last_used))
            cached = min(_common_prefix(slot.tokens, req.prompt), len(req.prompt) - 1)
            if cached <= 0 or not self.ctx.forget(slot.seq_id, cached):
                self.ctx.forget(slot.seq_id)
                cached = 0
            slot.tokens = slot.tokens[:cached]
            slot.busy = True
            seq = _Sequence(
                req=req,
                slot=slot,
                sampler=Sampler(self.model, req.sampling),
                text=TextStream(req.stops),
                pending=req.prompt[cached:],
                cached=cached,
                admitted_at=now,
                pos=cached,
            )
            self._active.append(seq)
            req.sink(Admitted(cached_tokens=cached))

    def _step(self) -> None:
        ctx = self.ctx
        ctx.clear_batch()
        decoding = 0
        for seq in self._active:
            seq.logits_index = -1
            if seq.next_token is not None:
                seq.logits_index = ctx.add(seq.next_token, seq.pos, seq.slot.seq_id, True)
                seq.slot.tokens.append(seq.next_token)
                seq.pos += 1
                seq.next_token = None
                decoding += 1
        # Prompt chunks fill the rest of the batch; while others generate, each step takes at
        # most `prefill_chunk` prompt tokens so their next token is never far away.
        budget = ctx.n_batch - decoding
        if decoding:
            budget = min(budget, self.config.prefill_chunk)
        prefilled = 0
        for seq in self._active:
            if not seq.pending or budget <= 0:
                continue
            take = seq.pending[:budget]
            last = len(take) == len(seq.pending)
            for j, tok in enumerate(take):
                idx = ctx.add(tok, seq.pos + j, seq.slot.seq_id, last and j == len(take) - 1)
            if last:
                seq.logits_index = idx
            seq.slot.tokens.extend(take)
            seq.pos += len(take)
            seq.pending = seq.pending[len(take) :]
            budget -= len(take)
            prefilled += len(take)

        started = time.monotonic()
        rc = ctx.decode()
        now = time.monotonic()
        if rc != 0:
            self._decode_failed(rc)
            return
        with self._cond:  # stats() reads these logs from other threads
            if decoding:
                self._decode_log.append((now, decoding, now - started))
                self._occupancy_log.append(decoding)
            if prefilled:
                self._prompt_log.append((now, prefilled, now - started))

        for seq in list(self._active):
            if seq.logits_index < 0:
                continue
            self._sample(seq, now)
        for seq in self._active:
            if seq.out_text and now - seq.last_flush >= COALESCE_SECONDS:
                self._flush(seq, now)

    def _sample(self, seq: _Sequence, now: float) -> None:
        tok = seq.sampler.sample(self.ctx, seq.logits_index)
        if seq.generated == 0:
            seq.first_token_at = now
            seq.req.sink(Generating())
        if self.model.is_eog(tok):
            self._finish(seq, Finish.END_OF_TURN)
            return
        seq.generated += 1
        self._generated_total += 1
        text, stopped = seq.text.feed(self.model.piece(tok, self._piece_buf))
        seq.out_text += text
        seq.out_tokens += 1
        if seq.generated == 1:
            self._flush(seq, now)
        if stopped:
            self._finish(seq, Finish.STOP_STRING)
        elif seq.generated >= seq.req.max_tokens:
            self._finish(seq, Finish.MAX_TOKENS)
        elif seq.pos >= self.n_ctx_seq:
            self._finish(seq, Finish.CONTEXT_FULL)
        else:
            seq.next_token = tok

    def _flush(self, seq: _Sequence, now: float) -> None:
        if seq.out_text or seq.out_tokens:
            seq.req.sink(Text(seq.out_text, seq.out_tokens))
        seq.out_text, seq.out_tokens, seq.last_flush = "", 0, now

    def _finish(self, seq: _Sequence, finish: Finish) -> None:
        if finish is not Finish.CANCELLED and finish is not Finish.STOP_STRING:
            seq.out_text += seq.text.finish()
        self._flush(seq, time.monotonic())
        self._release(seq, keep_cache=finish is not Finish.CANCELLED)
        seq.req.sink(self._done(seq.req, finish, seq))

    def _release(self, seq: _Sequence, keep_cache: bool) -> None:
        self._active.remove(seq)
        seq.sampler.close()
        slot = seq.slot
        slot.busy = False
        slot.last_used = time.monotonic()
        if not keep_cache:
            self.ctx.forget(slot.seq_id)
            slot.tokens = []

    def _decode_failed(self, rc: int) -> None:
        # With per-sequence KV streams a full cache cannot come from another sequence, so any
        # failure is reported to the sequences in this batch and their cells are freed.
        log.error("llama_decode failed with code %d for %d sequences", rc, len(self._active))
        for seq in list(self._active):
            self._release(seq, keep_cache=False)
            seq.req.sink(Failed(f"llama.cpp could not evaluate the batch (llama_decode returned {rc}); try again"))

    def _done(self, req: Request, finish: Finish, seq: _Sequence | None) -> Done:
        now = time.monotonic()
        if seq is None:
            return Done(finish, len(req.prompt), 0, 0, now - req.submitted_at, 0.0, 0.0, 0.0)
        prompt_end = seq.first_token_at or now
        return Done(
            finish=finish,
            prompt_tokens=len(req.prompt),
            cached_tokens=seq.cached,
            completion_tokens=seq.generated,
            queue_seconds=seq.admitted_at - req.submitted_at,
            prompt_seconds=prompt_end - seq.admitted_at,
            generation_seconds=(now - seq.first_token_at) if seq.first_token_at else 0.0,
            first_token_seconds=(seq.first_token_at - req.submitted_at) if seq.first_token_at else 0.0,
        )


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _rate(entries: collections.deque[tuple[float, int, float]], now: float) -> float:
    """Tokens per second of decoding time over the last few seconds (0 when idle)."""
    while entries and now - entries[0][0] > RATE_WINDOW_SECONDS:
        entries.popleft()
    busy = sum(seconds for _, _, seconds in entries)
    return sum(n for _, n, _ in entries) / busy if busy > 0 else 0.0
