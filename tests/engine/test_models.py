"""The model registry: discovery without restarts, and models held by turns stay loaded."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from enclaved.domain.config import Config, ModelSettings
from enclaved.domain.models import ModelRegistry, State
from enclaved.errors import FailedPrecondition, ResourceExhausted


def registry(folder: Path, **kw: object) -> ModelRegistry:
    settings = [ModelSettings(name=n, n_ctx=256, n_seq_max=1, n_threads=1) for n in ("a", "b")]
    return ModelRegistry(Config(models_dirs=[folder], models=settings, **kw))  # type: ignore[arg-type]


async def test_a_model_in_use_is_neither_unloaded_nor_evicted(tmp_path: Path, model_dir: Path) -> None:
    shutil.copy(model_dir / "tiny.gguf", tmp_path / "a.gguf")
    shutil.copy(model_dir / "tiny.gguf", tmp_path / "b.gguf")
    reg = registry(tmp_path, memory_budget=600_000)  # room for one of them
    reg.catalog.refresh()  # a discovery pass; the files were written just now, so they are pending
    try:
        async with reg.using("a") as engine:
            assert engine.n_ctx_seq == 256
            with pytest.raises(FailedPrecondition, match="in flight"):
                await reg.unload("a")
            with pytest.raises(ResourceExhausted, match="busy"):
                await reg.load("b")
        _, evicted = await reg.load("b")
        assert evicted == ["a"]
        assert reg.view("a").state is State.AVAILABLE and reg.view("b").state is State.LOADED
    finally:
        await reg.close()


async def test_files_dropped_in_are_found_without_a_restart(tmp_path: Path, model_dir: Path) -> None:
    reg = registry(tmp_path)
    reg.catalog.refresh()
    assert reg.views() == [] and reg.first_valid() is None
    shutil.copy(model_dir / "tiny.gguf", tmp_path / "a.gguf")
    reg.catalog.refresh()  # what the discovery thread does every POLL_SECONDS
    assert [(v.file.name, v.state) for v in reg.views()] == [("a", State.PENDING)]
    assert reg.first_valid() == "a"
    _, evicted = await reg.load("a")  # loading reads a pending header at once
    assert evicted == [] and reg.view("a").state is State.LOADED
    await reg.close()
