"""Continuous batching on one llama context, driven by one scheduler thread per loaded model.

The loop has the shape of llama.cpp's server (``update_slots``). Each step:

1. drop cancelled    — queued requests leave the queue, sequences in slots finish CANCELLED;
2. admit             — waiting requests take free slots, reusing the longest cached prefix;
3. build the batch   — the next token of every generating sequence, then prompt chunks
                       (chunked prefill) in the room left;
4. decode            — one ``llama_decode`` for all of them;
5. sample            — every sequence whose logits were computed, with its own sampler chain;
6. flush             — send each sequence's new text, at most every ``COALESCE_SECONDS``.

Nothing here knows about asyncio or gRPC: a request carries a ``sink`` callable that the
scheduler thread calls with ``EngineEvent``s; the caller makes it thread-safe.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from enclaved.engine.queue import RequestQueue
from enclaved.engine.requests import COALESCE_SECONDS, Admitted, Failed, Finish, Generating, Request, Text
from enclaved.engine.slots import SeqState, Sequence, Slot
from enclaved.engine.statecache import MIN_TOKENS, StateCache
from enclaved.engine.stats import EngineStats, StepLog
from enclaved.llama import Context, ContextParams, Model, ModelParams, check_grammar

log = logging.getLogger("enclaved.engine")

REUSE_MIN_RUN = 32  # cached tokens worth shifting into place, rather than evaluating again
_CRASHED = "the model's engine stopped after an internal error; reload the model"


@dataclass(frozen=True)
class EngineConfig:
    n_ctx_seq: int
    n_seq_max: int
    n_threads: int
    n_batch: int = 512
    prefill_chunk: int = 256  # prompt tokens per step while other sequences generate
    state_cache_bytes: int = 0  # RAM for the KV states of conversations that lost their slot; 0 = none


class Engine:
    """One model's context, slots, queue and scheduler thread; call ``start()`` to run it."""

    def __init__(self, model: Model, config: EngineConfig, name: str = "", *, owns_model: bool = False) -> None:
        self.model = model
        self.config = config
        self._owns_model = owns_model  # close() frees the model too (see load())
        self.ctx = Context(
            model,
            ContextParams(n_ctx_seq=config.n_ctx_seq, n_seq_max=config.n_seq_max, n_batch=config.n_batch, n_threads=config.n_threads),
        )
        self.n_ctx_seq = self.ctx.n_ctx_seq
        self._slots = [Slot(i, self.n_ctx_seq) for i in range(self.ctx.n_seq_max)]
        self._queue = RequestQueue()
        self._active: list[Sequence] = []  # admitted, in admission order
        self._lock = threading.Lock()  # _active and slot.busy, against submit/stats/busy; before the queue's
        self._steps = StepLog()
        self._states = StateCache(config.state_cache_bytes) if config.state_cache_bytes else None
        self._piece_buf = ctypes.create_string_buffer(256)
        self._thread = threading.Thread(target=self._run, name=f"engine-{name}", daemon=True)

    @classmethod
    def load(cls, path: Path, config: EngineConfig, *, n_gpu_layers: int = 0, name: str = "") -> Engine:
        """Load the model file and make its engine, which owns the model (not started yet).
        Raises ``LoadError`` when llama.cpp cannot load the file or make the context."""
        model = Model(path, ModelParams(n_gpu_layers=n_gpu_layers))
        try:
            return cls(model, config, name, owns_model=True)
        except BaseException:
            model.close()
            raise

    # ---- API for other threads -------------------------------------------------------------

    def start(self) -> None:
        """Start the scheduler thread; requests submitted before wait in the queue."""
        self._thread.start()

    def submit(self, req: Request) -> int:
        """Queue a request; returns its position in the queue (0 = a slot is free now)."""
        if not 0 < len(req.prompt) < self.n_ctx_seq:
            raise ValueError(f"prompt of {len(req.prompt)} tokens does not fit a {self.n_ctx_seq}-token sequence")
        if req.sampling.grammar:
            check_grammar(self.model, req.sampling.grammar)  # GrammarError, a ValueError, before it queues
        seq = Sequence(req)
        with self._lock:
            waiting = self._queue.put(seq)
            free = sum(not s.busy for s in self._slots)
        return max(0, waiting - free)

    def cancel(self, req: Request) -> None:
        """Stop a request at the next step; its KV cells are freed then."""
        self._queue.cancel(req)

    def stats(self) -> EngineStats:
        with self._lock:
            active, queued = len(self._active), len(self._queue)
            states = self._states
            cached = (states.bytes, states.budget_bytes, len(states)) if states is not None else (0, 0, 0)
        stats = self._steps.stats(time.monotonic(), active, queued)
        return replace(stats, state_cache_bytes=cached[0], state_cache_budget=cached[1], state_cache_entries=cached[2])

    @property
    def busy(self) -> bool:
        with self._lock:
            return bool(self._active) or len(self._queue) > 0

    def close(self) -> None:
        """Cancel everything, stop the thread and free the context (and an owned model)."""
        self._queue.close()
        with self._lock:
            for seq in self._active:
                seq.req.cancelled = True
        if self._thread.ident is not None:
            self._thread.join()
        else:  # never started: nothing was admitted, so only the queue has requests to end
            self._drop_cancelled()
        self.ctx.close()
        if self._owns_model:
            self.model.close()

    # ---- scheduler thread ------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while self._queue.wait(busy=bool(self._active)):
                self._update()
        except Exception:  # a bug here must not leave clients waiting forever
            log.exception("engine scheduler crashed")
            with self._lock:
                stranded = self._active + self._queue.drain()
                self._active.clear()
            for seq in stranded:
                seq.state = SeqState.DONE
                seq.req.sink(Failed(_CRASHED))

    def _update(self) -> None:
        """One step: the six stages of the module docstring."""
        self._drop_cancelled()
        self._admit()
        if not self._active:
            return
        decoded, prefilled = self._build_batch()
        now = self._decode(decoded, prefilled)
        if now is None:
            return
        self._sample(now)
        self._flush(now)

    def _drop_cancelled(self) -> None:
        now = time.monotonic()
        for seq in self._queue.take_cancelled():
            seq.state = SeqState.DONE
            seq.req.sink(seq.result(Finish.CANCELLED, now))
        for seq in [s for s in self._active if s.req.cancelled]:
            self._finish(seq, Finish.CANCELLED)

    def _admit(self) -> None:
        """Free slots to waiting requests in FIFO order; each takes the free slot whose cells
        it goes on from (``_fit``), else an empty one, else the least recently used. Cells of
        another conversation it goes on from are copied into an empty slot when there is one,
        so that conversation keeps its own."""
        now = time.monotonic()
        while True:
            with self._lock:
                free = [s for s in self._slots if not s.busy]
                seq = self._queue.pop() if free else None
                if seq is None:
                    return
                slot = max(free, key=lambda s: _fit(s, seq.req.owner, seq.prompt))
                source = None
                empty = next((s for s in free if s.n_cells == 0), None)
                if slot.owner and slot.owner != seq.req.owner and slot.n_cells and empty is not None:
                    # another conversation's cells this prompt goes on from (a shared system
                    # prompt): copy them into an empty slot, not take that conversation's slot
                    source = slot if slot.common_prefix(seq.prompt) >= MIN_TOKENS else None
                    slot = empty
                slot.busy = True
                slot.owner = seq.req.owner
                self._active.append(seq)
            if source is not None:
                self.ctx.copy_sequence(source.seq_id, slot.seq_id)
                slot.hold(source.tokens)
            if self._states is not None:
                self._swap_states(slot, seq.prompt)
            cached = self._reuse(slot, seq.prompt)
            slot.keep(cached)
            seq.admit(slot, seq.req.sampling.sampler(self.model, seq.req.prompt), cached, now)
            seq.req.sink(Admitted(cached_tokens=cached))

    def _swap_states(self, slot: Slot, prompt: npt.NDArray[np.int32]) -> None:
        """Before another conversation takes the slot, keep the one it holds; then, if a kept
        state shares more with the prompt than the slot does, restore it into the slot."""
        assert self._states is not None
        prefix = slot.common_prefix(prompt)
        if slot.n_cells >= MIN_TOKENS and prefix < slot.n_cells // 2:
            data = self.ctx.save_sequence(slot.seq_id)
            with self._lock:
                self._states.put(slot.tokens, data)
        with self._lock:
            saved = self._states.take(prompt, better_than=prefix)
        if saved is None:
            return
        self.ctx.forget(slot.seq_id)
        if self.ctx.restore_sequence(slot.seq_id, saved.data):
            slot.hold(saved.tokens)
        else:  # the prompt is read again instead
            log.warning("a saved sequence state could not be restored; evaluating the prompt again")
            slot.keep(0)

    def _reuse(self, slot: Slot, prompt: npt.NDArray[np.int32]) -> int:
        """Keep what the slot's cells share with the prompt: the common prefix, then (when the
        model's cache can shift) later runs moved back into place. Frees every other cell of
        the sequence; returns how many prompt tokens are cached."""
        seq_id = slot.seq_id
        cached = min(slot.common_prefix(prompt), len(prompt) - 1)
        plan = slot.reuse_plan(prompt, cached, REUSE_MIN_RUN) if self.ctx.can_shift and cached > 0 else []
        for to, frm, n in plan:
            if not self.ctx.forget_between(seq_id, to, frm):
                break  # the cache cannot free cells in the middle: keep the prefix only
            self.ctx.shift(seq_id, frm, frm + n, to - frm)
            slot.move(to, frm, n)
            cached = to + n
        if cached <= 0 or not self.ctx.forget(seq_id, cached):
            self.ctx.forget(seq_id)
            cached = 0
        return cached

    def _build_batch(self) -> tuple[int, int]:
        """The next token of every generating sequence, then prompt chunks in the room left;
        returns (generated tokens, prompt tokens) in the batch.

        The batch holds the sequences in the order of their ids: with a KV stream per
        sequence, llama.cpp puts into one micro-batch (one pass through the model) only
        sequences whose ids follow each other (``split_equal``); in admission order, four
        generating sequences could take four passes a step instead of one."""
        batch = self.ctx.batch
        batch.clear()
        decoded = sum(seq.next_token is not None for seq in self._active)
        # While others generate, each step takes at most `prefill_chunk` prompt tokens so their
        # next token is never far away; the room goes to the sequences in admission order.
        budget = min(batch.free - decoded, self.config.prefill_chunk) if decoded else batch.free
        chunks: dict[int, int] = {}  # seq id → prompt tokens it puts in this step
        for seq in self._active:
            if budget <= 0:
                break
            n = min(seq.prompt_left, budget)  # 0 for a generating sequence
            if n > 0:
                chunks[seq.slot.seq_id] = n
                budget -= n
        prefilled = 0
        for seq in sorted(self._active, key=lambda s: s.slot.seq_id):
            seq.logits_index = -1
            if seq.next_token is not None:
                seq.logits_index = batch.add(seq.next_token, seq.pos, seq.slot.seq_id, True)
                seq.slot.push(seq.next_token)
                seq.pos += 1
                seq.next_token = None
            elif seq.slot.seq_id in chunks:
                n = chunks[seq.slot.seq_id]
                chunk = seq.prompt[seq.pos : seq.pos + n]  # a view
                last = n == seq.prompt_left
                index = batch.add_chunk(chunk, seq.pos, seq.slot.seq_id, logits_last=last)
                if last:
                    seq.logits_index = index
                seq.slot.extend(chunk)
                seq.pos += n
                prefilled += n
        return decoded, prefilled

    def _decode(self, decoded: int, prefilled: int) -> float | None:
        """Run the batch; returns when it ended, or None if llama.cpp failed it."""
        started = time.monotonic()
        rc = self.ctx.decode()
        now = time.monotonic()
        if rc != 0:
            # With per-sequence KV streams a full cache cannot come from another sequence, so
            # any failure is reported to the sequences in this batch and their cells are freed.
            log.error("llama_decode failed with code %d for %d sequences", rc, len(self._active))
            for seq in list(self._active):
                self._release(seq, keep_cache=False)
                seq.req.sink(Failed(f"llama.cpp could not evaluate the batch (llama_decode returned {rc}); try again"))
            return None
        self._steps.step(now, now - started, decoded, prefilled)
        return now

    def _sample(self, now: float) -> None:
        for seq in list(self._active):
            if seq.logits_index >= 0:
                self._sample_one(seq, now)

    def _sample_one(self, seq: Sequence, now: float) -> None:
        tok = seq.sampler.sample(self.ctx, seq.logits_index)
        if seq.state is SeqState.PREFILL:
            seq.state = SeqState.GENERATING
            seq.first_token_at = now
            seq.req.sink(Generating())
        if self.model.is_eog(tok):
            self._finish(seq, Finish.END_OF_TURN)
            return
        seq.generated_tokens.append(tok)
        self._steps.sampled()
        text, stopped = seq.text.feed(self.model.piece(tok, self._piece_buf))
        seq.out_text += text
        seq.out_tokens += 1
        if seq.generated == 1:
            self._send_text(seq, now)
        if stopped:
            self._finish(seq, Finish.STOP_STRING)
        elif seq.generated >= seq.req.max_tokens:
            self._finish(seq, Finish.MAX_TOKENS)
        elif seq.pos >= self.n_ctx_seq:
            self._finish(seq, Finish.CONTEXT_FULL)
        else:
            seq.next_token = tok

    def _flush(self, now: float) -> None:
        for seq in self._active:
            if seq.out_text and now - seq.last_flush >= COALESCE_SECONDS:
                self._send_text(seq, now)

    def _send_text(self, seq: Sequence, now: float) -> None:
        if seq.out_text or seq.out_tokens:
            seq.req.sink(Text(seq.out_text, seq.out_tokens))
        seq.out_text, seq.out_tokens, seq.last_flush = "", 0, now

    def _finish(self, seq: Sequence, finish: Finish) -> None:
        if finish is not Finish.STOP_STRING:  # a cancelled reply ends with all its tokens' text too
            seq.out_text += seq.text.finish()
        self._send_text(seq, time.monotonic())
        # a cancelled reply is kept in the conversation as far as it went: its cells are what
        # the next turn reads first (the slot knows exactly which tokens they hold)
        self._release(seq, keep_cache=True)
        seq.req.sink(seq.result(finish, time.monotonic()))

    def _release(self, seq: Sequence, keep_cache: bool) -> None:
        with self._lock:
            self._active.remove(seq)
            seq.release()
        if not keep_cache:
            self.ctx.forget(seq.slot.seq_id)
            seq.slot.keep(0)


def _fit(slot: Slot, owner: str, prompt: npt.NDArray[np.int32]) -> tuple[bool, int, bool, float]:
    """How well a free slot suits a request: the slot of the same conversation first (even
    when its oldest turns were dropped, shifting reuses what is left); then the cells it
    shares with the prompt, counted only when they are at least half of what the slot holds
    (a shared system header alone does not make another agent's conversation one to take
    over); then an empty slot; then the least recently used."""
    shared = slot.common_prefix(prompt)
    return (bool(owner) and slot.owner == owner, shared if 2 * shared >= slot.n_cells else 0, slot.n_cells == 0, -slot.last_used)
