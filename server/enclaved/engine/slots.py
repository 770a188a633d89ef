"""Sequence slots of the llama context and the requests that occupy them.

A ``Slot`` is one of the context's KV sequences and remembers which tokens its cells hold, so
a later prompt with the same beginning reuses them. A ``Sequence`` is one request's life in
the engine; its ``state`` is what llama.cpp's server keeps per slot:

    QUEUED ──admit──▶ PREFILL ──first token──▶ GENERATING ──▶ DONE
       └──────────────cancelled──────────────────────────────▶ DONE

In PREFILL, ``pos`` is also the offset of the next prompt token to decode: chunks are views
of the prompt array, which is never sliced into a new "pending" list.
"""

from __future__ import annotations

import enum
import time

import numpy as np
import numpy.typing as npt

from enclaved.engine.requests import Finish, Request, TurnResult
from enclaved.engine.textstream import TextStream
from enclaved.llama import Sampler


def prefix_length(a: npt.NDArray[np.int32], b: npt.NDArray[np.int32]) -> int:
    """How many leading tokens ``a`` and ``b`` share."""
    n = min(len(a), len(b))
    differ = np.flatnonzero(a[:n] != b[:n])
    return int(differ[0]) if differ.size else n


class SeqState(enum.Enum):
    QUEUED = "queued"  # waiting in the request queue for a free slot
    PREFILL = "prefill"  # in a slot; its prompt goes into the batch in chunks
    GENERATING = "generating"  # the first token is sampled; one token per step goes into the batch
    DONE = "done"  # its result (or failure) was sent; the slot is free


class Slot:
    """One KV sequence of the context: its id and the tokens its cells hold, in order."""

    def __init__(self, seq_id: int, capacity: int) -> None:
        self.seq_id = seq_id
        self._cells = np.zeros(capacity, dtype=np.int32)
        self._n_cells = 0
        self.last_used = 0.0
        self.busy = False
        self.owner = ""  # whose conversation the cells hold (``Request.owner``), if said

    def common_prefix(self, prompt: npt.NDArray[np.int32]) -> int:
        """How many leading tokens of ``prompt`` the cells already hold."""
        return prefix_length(self._cells[: self._n_cells], prompt)

    def reuse_plan(self, prompt: npt.NDArray[np.int32], start: int, min_run: int) -> list[tuple[int, int, int]]:
        """Runs of cells past the common prefix ``start`` that the prompt repeats further on:
        ``(prompt position, cell position, length)``, each at least ``min_run`` tokens, in
        order. Shifting those cells back to the prompt's positions reuses them: what a
        conversation that dropped its oldest turns still shares with the cache (llama.cpp's
        server does the same, ``--cache-reuse``). The prompt's last token is never reused: its
        logits are needed."""
        cells, n_cells, end = self._cells, self._n_cells, len(prompt) - 1
        plan: list[tuple[int, int, int]] = []
        head_p = head_c = start
        while head_c < n_cells and head_p < end:
            run = prefix_length(cells[head_c:n_cells], prompt[head_p:end])
            if run >= min_run:
                plan.append((head_p, head_c, run))
                head_p += run
                head_c += run
                continue
            ahead = np.flatnonzero(cells[head_c + 1 : n_cells] == prompt[head_p])  # where a run could begin
            if not ahead.size:
                break
            head_c += 1 + int(ahead[0])
        return plan

    def move(self, to: int, frm: int, n: int) -> None:
        """The cells at ``frm`` now sit at ``to`` (the caller shifted them in llama.cpp)."""
        self._cells[to : to + n] = self._cells[frm : frm + n].copy()

    @property
    def n_cells(self) -> int:
        return self._n_cells

    @property
    def tokens(self) -> npt.NDArray[np.int32]:
        """What the cells hold (a view: copy it to keep it)."""
        return self._cells[: self._n_cells]

    def hold(self, tokens: npt.NDArray[np.int32]) -> None:
        """The cells now hold ``tokens`` (the caller restored a saved state into them)."""
        self._cells[: len(tokens)] = tokens
        self._n_cells = len(tokens)

    def keep(self, n: int) -> None:
        """Only the first ``n`` cells stay (the caller freed the rest in llama.cpp)."""
        self._n_cells = min(n, self._n_cells)

    def push(self, token: int) -> None:
        self._cells[self._n_cells] = token
        self._n_cells += 1

    def extend(self, tokens: npt.NDArray[np.int32]) -> None:
        end = self._n_cells + len(tokens)
        self._cells[self._n_cells : end] = tokens
        self._n_cells = end


class Sequence:
    """A request from submission to its result: the state, where it stands in its prompt and
    reply, and the text it has yet to send."""

    def __init__(self, req: Request) -> None:
        self.req = req
        self.prompt = np.array(req.prompt, dtype=np.int32)  # once, on the submitting thread
        self.state = SeqState.QUEUED
        self.text = TextStream(req.stops)
        self._slot: Slot | None = None
        self._sampler: Sampler | None = None
        self.cached = 0
        self.admitted_at = 0.0
        self.pos = 0  # next KV position; in PREFILL also the next prompt token
        self.logits_index = -1  # batch index whose logits to sample this step, or -1
        self.next_token: int | None = None  # sampled, to be decoded next step
        self.generated_tokens: list[int] = []  # sampled so far, the end-of-generation token not among them
        self.first_token_at = 0.0
        self.out_text = ""  # text and tokens not sent yet (sends are coalesced)
        self.out_tokens = 0
        self.last_flush = 0.0

    @property
    def slot(self) -> Slot:
        assert self._slot is not None, "a queued sequence has no slot"
        return self._slot

    @property
    def sampler(self) -> Sampler:
        assert self._sampler is not None, "a queued sequence has no sampler"
        return self._sampler

    @property
    def generated(self) -> int:
        return len(self.generated_tokens)

    @property
    def prompt_left(self) -> int:
        """Prompt tokens not yet put into a batch."""
        return len(self.prompt) - self.pos if self.state is SeqState.PREFILL else 0

    def admit(self, slot: Slot, sampler: Sampler, cached: int, now: float) -> None:
        """Into ``slot``, whose first ``cached`` cells already hold the prompt's beginning."""
        self._slot, self._sampler = slot, sampler
        self.cached = self.pos = cached
        self.admitted_at = now
        self.state = SeqState.PREFILL

    def release(self) -> None:
        """DONE: the sampler is freed and the slot can take another sequence."""
        self.state = SeqState.DONE
        if self._sampler is not None:
            self._sampler.close()
        if self._slot is not None:
            self._slot.busy = False
            self._slot.last_used = time.monotonic()

    def result(self, finish: Finish, now: float) -> TurnResult:
        req = self.req
        if self._slot is None:  # never admitted
            return TurnResult(finish, prompt_tokens=len(req.prompt), queue_ms=_ms(now - req.submitted_at))
        first = self.first_token_at
        return TurnResult(
            finish=finish,
            prompt_tokens=len(req.prompt),
            completion_tokens=self.generated,
            cached_prompt_tokens=self.cached,
            queue_ms=_ms(self.admitted_at - req.submitted_at),
            time_to_first_token_ms=_ms(first - req.submitted_at) if first else 0.0,
            prompt_ms=_ms((first or now) - self.admitted_at),
            generation_ms=_ms(now - first) if first else 0.0,
            tokens=tuple(self.generated_tokens),
        )


def _ms(seconds: float) -> float:
    return seconds * 1000
