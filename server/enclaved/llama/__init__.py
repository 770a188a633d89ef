"""A thin, typed layer over llama-cpp-python's low-level (ctypes) API.

Only the engine's scheduler thread touches a ``Context`` (and its batch and samplers); a
``Model`` (weights and vocabulary) is read-only after loading, so tokenizing from other threads
is safe. Nothing above the engine imports this package.

The modules that import ``llama_cpp`` (which loads the shared library) are imported on first
use of their names, so the daemon opens its socket before it pays for them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from enclaved.llama.base import DEFAULT_SEED, LoadError

if TYPE_CHECKING:
    from enclaved.llama.backend import init_backend
    from enclaved.llama.context import Batch, Context, ContextParams
    from enclaved.llama.model import Model, ModelParams
    from enclaved.llama.sampler import GrammarError, Sampler, check_grammar

_LAZY = {
    "init_backend": "backend",
    "Batch": "context",
    "Context": "context",
    "ContextParams": "context",
    "Model": "model",
    "ModelParams": "model",
    "Sampler": "sampler",
    "GrammarError": "sampler",
    "check_grammar": "sampler",
}

__all__ = [
    "DEFAULT_SEED",
    "Batch",
    "Context",
    "ContextParams",
    "GrammarError",
    "LoadError",
    "Model",
    "ModelParams",
    "Sampler",
    "check_grammar",
    "init_backend",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
