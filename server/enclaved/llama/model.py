"""Loaded weights and vocabulary: tokenizing, token pieces, end-of-generation tokens."""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from pathlib import Path

import llama_cpp as L

from enclaved.llama.backend import init_backend
from enclaved.llama.base import LoadError

# llama.cpp's built-in chat templates, by the architecture of a model whose GGUF has none
BUILTIN_TEMPLATES = {"gemma": "gemma", "gemma2": "gemma", "gemma3": "gemma", "qwen2": "chatml", "phi3": "phi3"}


@dataclass(frozen=True)
class ModelParams:
    n_gpu_layers: int = 0


class Model:
    """Loaded weights and vocabulary; read-only after loading, so any thread may tokenize."""

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
        self.architecture = self.metadata("general.architecture") or ""

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

    def builtin_template(self, messages: list[dict[str, str]]) -> str | None:
        """The conversation through llama.cpp's built-in template for this architecture, with
        the assistant's turn begun; None when llama.cpp has none for it."""
        name = BUILTIN_TEMPLATES.get(self.architecture)
        if name is None:
            return None
        chat = (L.llama_chat_message * len(messages))(
            *(L.llama_chat_message(role=m["role"].encode(), content=m["content"].encode()) for m in messages)
        )
        size = 1024 + sum(len(m["content"]) * 4 for m in messages)
        for _ in range(2):
            buf = ctypes.create_string_buffer(size)
            n = L.llama_chat_apply_template(name.encode(), chat, len(messages), True, buf, size)
            if n < 0:
                return None
            if n < size:
                return buf.raw[:n].decode("utf-8", "replace")
            size = n + 1
        return None

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
