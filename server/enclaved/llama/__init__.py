"""A thin, typed layer over llama-cpp-python's low-level (ctypes) API.

Only the engine's scheduler thread touches a ``Context`` (and its batch and samplers); a
``Model`` (weights and vocabulary) is read-only after loading, so tokenizing from other threads
is safe. Nothing above the engine imports this package.
"""

from enclaved.llama.backend import init_backend
from enclaved.llama.context import Batch, Context, ContextParams
from enclaved.llama.model import LoadError, Model, ModelParams
from enclaved.llama.sampler import DEFAULT_SEED, GrammarError, Sampler, check_grammar

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
