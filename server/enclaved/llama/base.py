"""What the layers above may name without loading llama.cpp (importing ``llama_cpp`` loads
the shared library and takes a tenth of a second: enclaved answers before it needs it)."""

from __future__ import annotations

DEFAULT_SEED = 0xFFFFFFFF  # LLAMA_DEFAULT_SEED: llama.cpp picks a random seed


class LoadError(Exception):
    """llama.cpp could not load a model file or create a context for it."""
