"""Writes llama-architecture GGUF models with random weights and a synthetic vocabulary.

The files are real models for llama.cpp: they load, tokenize, decode and sample like any
other GGUF, they just say nothing meaningful. ``tiny`` (a few hundred KB) drives the tests and
the demo; ``1b`` (about 1.1B parameters, TinyLlama's shape, quantized to Q4_K_M by llama.cpp's
own quantizer) drives the benchmarks.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from enclave.vocabulary import WORDS

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


_BYTE_TOKENS = [f"<0x{b:02X}>" for b in range(256)]
_SPECIAL = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
_PUNCT = list(".,;:!?'\"()-\n") + ["▁", "é", "ü", "日本", "→", "—"]


@dataclass(frozen=True)
class ModelShape:
    """Hyper-parameters of a llama-architecture model."""

    n_vocab: int
    n_embd: int
    n_layer: int
    n_head: int
    n_head_kv: int
    n_ff: int
    n_ctx_train: int

    @property
    def n_params(self) -> int:
        head_dim = self.n_embd // self.n_head
        kv = self.n_head_kv * head_dim
        per_layer = (
            2 * self.n_embd * self.n_embd  # q, o
            + 2 * self.n_embd * kv  # k, v
            + 3 * self.n_embd * self.n_ff  # gate, up, down
            + 2 * self.n_embd  # norms
        )
        return 2 * self.n_vocab * self.n_embd + self.n_layer * per_layer + self.n_embd


SIZES: dict[str, ModelShape] = {
    "tiny": ModelShape(n_vocab=800, n_embd=64, n_layer=2, n_head=4, n_head_kv=2, n_ff=128, n_ctx_train=4096),
    # TinyLlama-1.1B's shape: 22 layers, 2048 wide, grouped-query attention, 32k vocabulary.
    "1b": ModelShape(n_vocab=32000, n_embd=2048, n_layer=22, n_head=32, n_head_kv=4, n_ff=5632, n_ctx_train=4096),
}


def synthetic_vocab(n_vocab: int) -> list[str]:
    """Specials, 256 byte-fallback tokens, punctuation, words, then made-up syllable words."""
    base = _SPECIAL + _BYTE_TOKENS + _PUNCT + list("abcdefghijklmnopqrstuvwxyz")
    tokens = list(dict.fromkeys(base + ["▁" + w for w in WORDS] + WORDS))
    seen = set(tokens)
    consonants, vowels = "bcdfghjklmnprstvwz", "aeiou"
    syllables = [c + v for c in consonants for v in vowels]
    for n in itertools.count(1):
        for parts in itertools.product(syllables, repeat=n):
            if len(tokens) >= n_vocab:
                return tokens[:n_vocab]
            for piece in ("▁" + "".join(parts), "".join(parts)):
                if piece not in seen and len(tokens) < n_vocab:
                    seen.add(piece)
                    tokens.append(piece)
    raise AssertionError("unreachable")


def _token_types(tokens: list[str]) -> list[int]:
    from gguf import TokenType

    types = []
    for i, tok in enumerate(tokens):
        if i == 0:
            types.append(TokenType.UNKNOWN)
        elif tok in _SPECIAL:
            types.append(TokenType.CONTROL)
        elif tok in _BYTE_TOKENS:
            types.append(TokenType.BYTE)
        else:
            types.append(TokenType.NORMAL)
    return [int(t) for t in types]


def write_f16_model(
    path: Path,
    shape: ModelShape,
    *,
    seed: int = 0,
    name: str = "enclave-random",
    chat_template: str | None = CHATML_TEMPLATE,
    eos_logit: float | None = None,
) -> None:
    """Write an F16 model with random weights.

    ``eos_logit`` builds a model whose every step favours the end-of-sequence token by that
    logit (the layers are muted, so the residual stream is just the token embedding): tests use
    it to see end-of-generation stops on a real model.
    """
    import gguf

    rng = np.random.default_rng(seed)
    tokens = synthetic_vocab(shape.n_vocab)
    head_dim = shape.n_embd // shape.n_head
    kv_dim = shape.n_head_kv * head_dim

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(name)
    writer.add_context_length(shape.n_ctx_train)
    writer.add_embedding_length(shape.n_embd)
    writer.add_block_count(shape.n_layer)
    writer.add_feed_forward_length(shape.n_ff)
    writer.add_head_count(shape.n_head)
    writer.add_head_count_kv(shape.n_head_kv)
    writer.add_rope_dimension_count(head_dim)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_freq_base(10000.0)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores([0.0 if i < 3 else -float(len(t)) / 10 - i * 1e-6 for i, t in enumerate(tokens)])
    writer.add_token_types(_token_types(tokens))
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    if chat_template is not None:
        writer.add_chat_template(chat_template)

    def weight(rows: int, cols: int, scale: float = 0.02) -> np.ndarray:
        return (rng.standard_normal((rows, cols), dtype=np.float32) * scale).astype(np.float16)

    def ones(n: int) -> np.ndarray:
        return np.ones(n, dtype=np.float32)

    # Dimension 0 of every embedding is a positive constant that survives the (small) layers,
    # so output.weight's column 0 acts as a per-token bias: words are favoured over raw bytes
    # and control tokens, and the output reads like (meaningless) prose.
    embd = weight(shape.n_vocab, shape.n_embd, 1.0)
    embd[:, 0] = 1.0
    output = weight(shape.n_vocab, shape.n_embd)
    types = np.array(_token_types(tokens))
    output[:, 0] = np.where(types == int(gguf.TokenType.NORMAL), 3.0, 0.0)
    # Control tokens (end of sequence, end of turn) get a constant logit of 0, near the median,
    # so they never reach top-k: a reply ends on max_tokens, never by chance, and benchmarks
    # compare runs of equal length.
    output[(types == int(gguf.TokenType.CONTROL)) | (types == int(gguf.TokenType.UNKNOWN))] = 0.0
    if eos_logit is not None:
        output[2, :] = 0.0
        output[2, 0] = eos_logit
    writer.add_tensor("token_embd.weight", embd)
    writer.add_tensor("output_norm.weight", ones(shape.n_embd))
    writer.add_tensor("output.weight", output)
    mute = 0.0 if eos_logit is not None else 1.0
    for i in range(shape.n_layer):
        blk = f"blk.{i}"
        writer.add_tensor(f"{blk}.attn_norm.weight", ones(shape.n_embd))
        writer.add_tensor(f"{blk}.attn_q.weight", weight(shape.n_embd, shape.n_embd))
        writer.add_tensor(f"{blk}.attn_k.weight", weight(kv_dim, shape.n_embd))
        writer.add_tensor(f"{blk}.attn_v.weight", weight(kv_dim, shape.n_embd))
        writer.add_tensor(f"{blk}.attn_output.weight", weight(shape.n_embd, shape.n_embd) * mute)
        writer.add_tensor(f"{blk}.ffn_norm.weight", ones(shape.n_embd))
        writer.add_tensor(f"{blk}.ffn_gate.weight", weight(shape.n_ff, shape.n_embd))
        writer.add_tensor(f"{blk}.ffn_up.weight", weight(shape.n_ff, shape.n_embd))
        writer.add_tensor(f"{blk}.ffn_down.weight", weight(shape.n_embd, shape.n_ff) * mute)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


_silenced: list[object] = []  # the ctypes callback must outlive every call into llama.cpp


def _quiet_llama_log(llama_cpp: Any) -> None:
    """Keep llama.cpp's per-tensor progress log off the terminal (a model maker has no log)."""
    if _silenced:
        return

    @llama_cpp.llama_log_callback
    def drop(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        return None

    _silenced.append(drop)
    llama_cpp.llama_log_set(drop, ctypes.c_void_p(0))
    llama_cpp.llama_backend_init()


def quantize_q4_k_m(src: Path, dst: Path, n_threads: int | None = None) -> None:
    """Quantize with llama.cpp's own quantizer (``llama_model_quantize``)."""
    import llama_cpp

    _quiet_llama_log(llama_cpp)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M
    params.nthread = n_threads or os.cpu_count() or 1
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), params)
    if rc != 0:
        raise RuntimeError(f"llama_model_quantize failed with code {rc}")


def make_model(out: Path, size: str = "tiny", *, seed: int = 0, eos_logit: float | None = None) -> Path:
    """Write model ``size`` to ``out`` atomically (a half-written file never appears there)."""
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose one of {', '.join(SIZES)}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    shape = SIZES[size]
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".make-model-") as tmp:
        f16 = Path(tmp) / "model-f16.gguf"
        write_f16_model(f16, shape, seed=seed, name=f"enclave-random-{size}", eos_logit=eos_logit)
        if size == "tiny":
            os.replace(f16, out)
        else:
            q = Path(tmp) / "model-q4_k_m.gguf"
            quantize_q4_k_m(f16, q)
            os.replace(q, out)
    return out
