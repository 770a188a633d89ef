"""A thin, typed layer over llama-cpp-python's low-level (ctypes) API.

Only the engine's scheduler thread touches a ``Context``; a ``Model`` (weights and vocabulary)
is read-only after loading, so tokenizing from other threads is safe.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import llama_cpp as L

log = logging.getLogger("enclaved.llama")

# ggml_log_level values (ggml.h); the bindings do not export them.
_GGML_LOG_WARN, _GGML_LOG_ERROR = 3, 4

_backend_lock = threading.Lock()
_backend_ready = False


@L.llama_log_callback
def _forward_llama_log(level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
    # llama.cpp reports model loading at INFO; only its warnings and errors reach our log.
    # It never logs prompt text.
    if level in (_GGML_LOG_WARN, _GGML_LOG_ERROR):
        message = text.decode("utf-8", "replace").strip()
        if message:
            log.log(logging.WARNING if level == _GGML_LOG_WARN else logging.ERROR, "%s", message)


def init_backend() -> None:
    """Initialise llama.cpp once per process and route its log through ``logging``."""
    global _backend_ready
    with _backend_lock:
        if not _backend_ready:
            L.llama_log_set(_forward_llama_log, ctypes.c_void_p(0))
            L.llama_backend_init()
            _backend_ready = True


class LoadError(Exception):
    """llama.cpp could not load a model file."""


@dataclass(frozen=True)
class ModelParams:
    n_gpu_layers: int = 0


class Model:
    """Loaded weights and vocabulary."""

    def __init__(self, path: Path, params: ModelParams = ModelParams()) -> None:
        init_backend()
        mp = L.llama_model_default_params()
        mp.n_gpu_layers = params.n_gpu_layers
        self.path = path
        self._ptr = L.llama_model_load_from_file(str(path).encode(), mp)
        if not self._ptr:
            raise LoadError(f"llama.cpp could not load {path.name}")
        self.vocab = L.llama_model_get_vocab(self._ptr)
        self.n_vocab = L.llama_vocab_n_tokens(self.vocab)
        self.n_layer = L.llama_model_n_layer(self._ptr)
        self.add_bos = bool(L.llama_vocab_get_add_bos(self.vocab))
        self.bos_text = self.token_text(L.llama_vocab_bos(self.vocab))
        self.eos_text = self.token_text(L.llama_vocab_eos(self.vocab))
        self.chat_template = self.metadata("tokenizer.chat_template")

    @property
    def ptr(self) -> L.llama_model_p:
        return self._ptr

    def metadata(self, key: str) -> str | None:
        size = L.llama_model_meta_val_str(self._ptr, key.encode(), None, 0)
        if size < 0:
            return None
        buf = ctypes.create_string_buffer(size + 1)
        L.llama_model_meta_val_str(self._ptr, key.encode(), buf, size + 1)
        return buf.value.decode("utf-8", "replace")

    def token_text(self, token: int) -> str:
        if token < 0:
            return ""
        text = L.llama_vocab_get_text(self.vocab, token)
        return text.decode("utf-8", "replace") if text else ""

    def tokenize(self, text: str, *, add_special: bool, parse_special: bool = True) -> list[int]:
        data = text.encode("utf-8")
        capacity = len(data) + 8
        buf = (L.llama_token * capacity)()
        n = L.llama_tokenize(self.vocab, data, len(data), buf, capacity, add_special, parse_special)
        if n < 0:
            capacity = -n
            buf = (L.llama_token * capacity)()
            n = L.llama_tokenize(self.vocab, data, len(data), buf, capacity, add_special, parse_special)
        return list(buf[:n])

    def piece(self, token: int, buf: ctypes.Array[ctypes.c_char]) -> bytes:
        """The bytes of one token; may be part of a UTF-8 character."""
        n = L.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, False)
        if n < 0:
            bigger = ctypes.create_string_buffer(-n)
            n = L.llama_token_to_piece(self.vocab, token, bigger, len(bigger), 0, False)
            return bigger.raw[:n]
        return buf.raw[:n]

    def is_eog(self, token: int) -> bool:
        return bool(L.llama_vocab_is_eog(self.vocab, token))

    def close(self) -> None:
        if self._ptr:
            L.llama_model_free(self._ptr)
            self._ptr = None


@dataclass(frozen=True)
class ContextParams:
    n_ctx_seq: int
    n_seq_max: int
    n_batch: int
    n_threads: int


class Context:
    """A llama context with ``n_seq_max`` independent sequences of ``n_ctx_seq`` tokens each.

    KV memory is split per sequence (``kv_unified=False``): a sequence never runs out of cells
    because of another, and attention skips other sequences' cells.
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
        cp.no_perf = True
        self._ptr = L.llama_init_from_model(model.ptr, cp)
        if not self._ptr:
            raise LoadError("llama.cpp could not create a context (out of memory?)")
        self.memory = L.llama_get_memory(self._ptr)
        self.n_ctx_seq = int(L.llama_n_ctx_seq(self._ptr))
        self.n_seq_max = int(L.llama_n_seq_max(self._ptr))
        self.n_batch = params.n_batch
        self.batch = L.llama_batch_init(params.n_batch, 0, 1)
        self.n_tokens = 0

    @property
    def ptr(self) -> L.llama_context_p:
        return self._ptr

    def clear_batch(self) -> None:
        self.n_tokens = 0

    def add(self, token: int, pos: int, seq: int, logits: bool) -> int:
        """Append one token to the batch; returns its index (for reading its logits)."""
        b, i = self.batch, self.n_tokens
        b.token[i] = token
        b.pos[i] = pos
        b.n_seq_id[i] = 1
        b.seq_id[i][0] = seq
        b.logits[i] = logits
        self.n_tokens = i + 1
        return i

    def decode(self) -> int:
        """Run the batch; 0 on success (see llama_decode for the other codes)."""
        self.batch.n_tokens = self.n_tokens
        return int(L.llama_decode(self._ptr, self.batch))

    def forget(self, seq: int, from_pos: int = 0) -> bool:
        """Free the KV cells of ``seq`` from ``from_pos`` on; False if llama.cpp cannot."""
        return bool(L.llama_memory_seq_rm(self.memory, seq, from_pos, -1))

    def close(self) -> None:
        if self._ptr:
            L.llama_batch_free(self.batch)
            L.llama_free(self._ptr)
            self._ptr = None


@dataclass(frozen=True)
class SamplingSettings:
    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    repeat_penalty: float = 1.1
    seed: int = L.LLAMA_DEFAULT_SEED
    penalty_last_n: int = 64


class Sampler:
    """One sampler chain per sequence: penalties, grammar-free truncation and RNG are per stream."""

    def __init__(self, model: Model, s: SamplingSettings) -> None:
        self._ptr = L.llama_sampler_chain_init(L.llama_sampler_chain_default_params())
        add = lambda smpl: L.llama_sampler_chain_add(self._ptr, smpl)  # noqa: E731
        if s.repeat_penalty != 1.0:
            add(L.llama_sampler_init_penalties(model.n_vocab, s.penalty_last_n, s.repeat_penalty, 0.0, 0.0))
        if s.temperature <= 0:
            add(L.llama_sampler_init_greedy())
            return
        if s.top_k > 0:
            add(L.llama_sampler_init_top_k(s.top_k))
        if s.top_p < 1.0:
            add(L.llama_sampler_init_top_p(s.top_p, 1))
        if s.min_p > 0.0:
            add(L.llama_sampler_init_min_p(s.min_p, 1))
        add(L.llama_sampler_init_temp(s.temperature))
        add(L.llama_sampler_init_dist(s.seed))

    def sample(self, ctx: Context, index: int) -> int:
        """Sample from the logits of batch position ``index`` and accept the token."""
        return int(L.llama_sampler_sample(self._ptr, ctx.ptr, index))

    def close(self) -> None:
        if self._ptr:
            L.llama_sampler_free(self._ptr)
            self._ptr = None
