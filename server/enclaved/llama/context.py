"""A llama context with independent sequences, and the batch it decodes."""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import llama_cpp as L
import numpy as np
import numpy.typing as npt

from enclaved.llama.base import LoadError
from enclaved.llama.model import Model


class Batch:
    """A ``llama_batch`` over numpy arrays, so a prompt chunk goes in with four slice
    assignments rather than a Python loop per token.

    Every token belongs to exactly one sequence: ``n_seq_id`` is 1 throughout and
    ``seq_id[i]`` points at ``seq[i]``, so a chunk's sequence ids are one slice as well.
    (``llama_batch_init`` gives every token its own small id array, which cannot be filled that
    way; this batch owns its memory and is never passed to ``llama_batch_free``.)
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.token = np.zeros(capacity, dtype=np.int32)
        self.pos = np.zeros(capacity, dtype=np.int32)
        self.seq = np.zeros(capacity, dtype=np.int32)
        self.logits = np.zeros(capacity, dtype=np.int8)
        self._n_seq_id = np.ones(capacity, dtype=np.int32)
        id_ptr = ctypes.POINTER(ctypes.c_int32)
        base, size = self.seq.ctypes.data, self.seq.itemsize
        self._seq_ids = (id_ptr * capacity)(*(ctypes.cast(base + i * size, id_ptr) for i in range(capacity)))
        self.struct = L.llama_batch(
            n_tokens=0,
            token=self.token.ctypes.data_as(id_ptr),
            embd=None,
            pos=self.pos.ctypes.data_as(id_ptr),
            n_seq_id=self._n_seq_id.ctypes.data_as(id_ptr),
            seq_id=ctypes.cast(self._seq_ids, ctypes.POINTER(id_ptr)),
            logits=self.logits.ctypes.data_as(ctypes.POINTER(ctypes.c_int8)),
        )
        self.n_tokens = 0

    @property
    def free(self) -> int:
        return self.capacity - self.n_tokens

    def clear(self) -> None:
        self.n_tokens = 0

    def add(self, token: int, pos: int, seq: int, logits: bool) -> int:
        """Append one token; returns its index (for reading its logits)."""
        i = self.n_tokens
        self.token[i] = token
        self.pos[i] = pos
        self.seq[i] = seq
        self.logits[i] = logits
        self.n_tokens = i + 1
        return i

    def add_chunk(self, tokens: npt.NDArray[np.int32], pos: int, seq: int, logits_last: bool) -> int:
        """Append ``tokens`` of ``seq`` at positions ``pos, pos + 1, …``; logits for the last
        one only if ``logits_last``. Returns the last one's index."""
        start, n = self.n_tokens, len(tokens)
        end = start + n
        if not 0 < n <= self.free:
            raise ValueError(f"a chunk of {n} tokens does not fit the {self.free} free places of the batch")
        self.token[start:end] = tokens
        self.pos[start:end] = np.arange(pos, pos + n, dtype=np.int32)
        self.seq[start:end] = seq
        self.logits[start:end] = 0
        self.logits[end - 1] = logits_last
        self.n_tokens = end
        return end - 1


@dataclass(frozen=True)
class ContextParams:
    n_ctx_seq: int
    n_seq_max: int
    n_batch: int
    n_threads: int


class Context:
    """A llama context with ``n_seq_max`` independent sequences of ``n_ctx_seq`` tokens each.

    KV memory is split per sequence (``kv_unified=False``): a sequence never runs out of cells
    because of another, and attention skips other sequences' cells. Only one thread (the
    engine's scheduler) may use a context.
    """

    def __init__(self, model: Model, params: ContextParams) -> None:
        cp = L.llama_context_default_params()
        cp.n_ctx = params.n_ctx_seq * params.n_seq_max
        cp.n_seq_max = params.n_seq_max
        cp.n_batch = params.n_batch
        cp.n_ubatch = params.n_batch
        cp.n_threads = params.n_threads
        cp.n_threads_batch = params.n_threads
        cp.kv_unified = False
        cp.swa_full = True  # sliding-window layers keep every cell too, so a prefix can be reused
        cp.no_perf = True
        self._ptr = L.llama_init_from_model(model.ptr, cp)
        if not self._ptr:
            raise LoadError("llama.cpp could not create a context (out of memory?)")
        self.memory = L.llama_get_memory(self._ptr)
        self.n_ctx_seq = int(L.llama_n_ctx_seq(self._ptr))
        self.n_seq_max = int(L.llama_n_seq_max(self._ptr))
        self.n_batch = params.n_batch
        self.batch = Batch(params.n_batch)
        self.can_shift = bool(L.llama_memory_can_shift(self.memory))

    @property
    def ptr(self) -> L.llama_context_p:
        return self._ptr

    def decode(self) -> int:
        """Run the batch; 0 on success (see llama_decode for the other codes)."""
        self.batch.struct.n_tokens = self.batch.n_tokens
        return int(L.llama_decode(self._ptr, self.batch.struct))

    def forget(self, seq: int, from_pos: int = 0) -> bool:
        """Free the KV cells of ``seq`` from ``from_pos`` on; False if llama.cpp cannot."""
        return bool(L.llama_memory_seq_rm(self.memory, seq, from_pos, -1))

    def forget_between(self, seq: int, start: int, end: int) -> bool:
        """Free the cells of ``seq`` at positions ``start`` to ``end`` (exclusive)."""
        return bool(L.llama_memory_seq_rm(self.memory, seq, start, end))

    def copy_sequence(self, src: int, dst: int) -> None:
        """``dst`` holds what ``src`` holds, which keeps its cells. Each sequence has a KV
        stream of its own, so llama.cpp copies the whole stream, at the next decode before the
        batch: a memory copy, far cheaper than evaluating the tokens again."""
        L.llama_memory_seq_cp(self.memory, src, dst, -1, -1)

    def shift(self, seq: int, start: int, end: int, delta: int) -> None:
        """Move the cells of ``seq`` at positions ``start`` to ``end`` by ``delta`` positions
        (llama.cpp re-rotates their keys at the next decode); only if ``can_shift``."""
        L.llama_memory_seq_add(self.memory, seq, start, end, delta)

    def save_sequence(self, seq: int) -> bytes:
        """The serialized KV state of ``seq`` (its cells, for ``restore_sequence``)."""
        size = int(L.llama_state_seq_get_size(self._ptr, seq))
        buf = (ctypes.c_ubyte * size)()
        written = int(L.llama_state_seq_get_data(self._ptr, buf, size, seq))
        return bytes(buf)[:written]

    def restore_sequence(self, seq: int, data: bytes) -> bool:
        """Put a saved state into ``seq`` (empty it first); False if llama.cpp refuses it."""
        buf = (ctypes.c_ubyte * len(data)).from_buffer_copy(data)
        return int(L.llama_state_seq_set_data(self._ptr, buf, len(data), seq)) > 0

    def close(self) -> None:
        if self._ptr:
            L.llama_free(self._ptr)
            self._ptr = None
