"""enclaved opens its socket before it loads a model, so what only a model needs is imported
with the first one: llama.cpp's bindings (which load the shared library), numpy and Jinja; and
what only the HTTP API or a remote engine needs, only when [http] or [[engines]] says so."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("llama_cpp", "numpy", "jinja2", "aiohttp", "prometheus_client", "httpx")


def test_the_daemon_imports_no_model_machinery_before_a_model_loads() -> None:
    code = f"import sys, enclaved.cli, enclaved.daemon; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert r.stdout.strip() == "", f"imported at start: {r.stdout.strip()}"


def test_the_lazy_names_are_the_real_ones() -> None:
    import llama_cpp

    from enclaved import engine, llama
    from enclaved.engine import scheduler
    from enclaved.llama import model, sampler

    assert llama.DEFAULT_SEED == llama_cpp.LLAMA_DEFAULT_SEED
    assert engine.Engine is scheduler.Engine and engine.EngineConfig is scheduler.EngineConfig
    assert llama.Model is model.Model and llama.Sampler is sampler.Sampler and llama.LoadError is model.LoadError
