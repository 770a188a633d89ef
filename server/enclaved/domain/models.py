"""Loaded models: loading on first use, unloading, and least-recently-used eviction under a
memory budget. Loading runs in a worker thread so the event loop never waits on llama.cpp."""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from enclaved.audit.recorder import Recorder
from enclaved.audit.records import Action, Entry
from enclaved.domain.catalog import Catalog, ModelFile, check_model_name, model_name
from enclaved.domain.config import Config, ModelSettings
from enclaved.domain.engines import split_model
from enclaved.domain.remote import RemoteModels
from enclaved.engine import EngineStats, LoadError
from enclaved.errors import FailedPrecondition, NotFound, ResourceExhausted

if TYPE_CHECKING:
    from enclaved.engine import Engine, EngineConfig

log = logging.getLogger("enclaved.models")


class State(enum.Enum):
    AVAILABLE = "available"
    LOADING = "loading"
    LOADED = "loaded"
    INVALID = "invalid"
    FAILED = "failed"
    PENDING = "pending"  # found; its header is not read yet (or the file is still being written)


@dataclass
class LoadedModel:
    file: ModelFile
    engine: Engine  # owns the loaded weights
    memory_bytes: int
    last_used: float
    users: int = 0  # turns holding the model (tokenizing, queued or decoding)

    @property
    def busy(self) -> bool:
        return self.users > 0 or self.engine.busy


@dataclass(frozen=True)
class ModelView:
    """A model as clients see it: the file, its state, and live engine figures when loaded."""

    file: ModelFile
    state: State
    problem: str = ""
    memory_bytes: int = 0
    context_size: int = 0
    sequence_slots: int = 0
    stats: EngineStats | None = None


def engine_config(s: ModelSettings) -> EngineConfig:
    """The engine settings of a model's ``[[models]]`` entry (or the defaults)."""
    from enclaved.engine import EngineConfig

    return EngineConfig(
        n_ctx_seq=s.n_ctx,
        n_seq_max=s.n_seq_max,
        n_threads=s.n_threads or os.cpu_count() or 1,
        n_batch=s.n_batch,
        prefill_chunk=s.prefill_chunk,
        state_cache_bytes=s.state_cache,
    )


class ModelRegistry:
    def __init__(self, config: Config, recorder: Recorder | None = None) -> None:
        self.config = config
        self.recorder = recorder  # every load, unload and eviction is audited when given
        self.catalog = Catalog(config.models_dirs, cache_file=config.data_dir / "model-headers.json")
        self._loaded: dict[str, LoadedModel] = {}
        self._failed: dict[str, str] = {}
        self._load_tasks: dict[str, asyncio.Task[tuple[LoadedModel, list[str]]]] = {}
        self._load_lock = asyncio.Lock()
        self._loading: set[str] = set()
        self.remote = RemoteModels(config.engines)  # model@engine; empty without [[engines]]

    # ---- queries ----------------------------------------------------------------------------

    def file(self, name: str) -> ModelFile:
        """The model called ``name`` (``name.gguf`` works too); NotFound if there is none."""
        _, engine = split_model(name)
        if engine:
            raise FailedPrecondition(f"{name!r} runs on engine {engine}, which loads its own models; enclave loads only local GGUF files")
        name = model_name(name)
        check_model_name(name)
        found = self.catalog.scan().get(name)
        if found is None:
            folders = ", ".join(str(d) for d in self.catalog.dirs)
            raise NotFound(f"no model named {name!r}; put {name}.gguf in a models folder ({folders}) or see `enclave models`")
        return found

    def check(self, name: str) -> None:
        """NotFound (or InvalidArgument) unless ``name`` is a local model or a configured
        ``model@engine``."""
        if split_model(name)[1]:
            self.remote.engine(name)
        else:
            self.file(name)

    def views(self) -> list[ModelView]:
        return [self._view(f) for f in self.catalog.scan().values()]

    def view(self, name: str) -> ModelView:
        return self._view(self.file(name))

    def first_valid(self) -> str | None:
        """The first model that is valid and has not failed to load: the default for agents."""
        return next((f.name for f in self.catalog.scan().values() if f.valid and f.name not in self._failed), None)

    def _view(self, f: ModelFile) -> ModelView:
        loaded = self._loaded.get(f.name)
        if loaded is not None:
            return ModelView(
                file=f,
                state=State.LOADED,
                memory_bytes=loaded.memory_bytes,
                context_size=loaded.engine.n_ctx_seq,
                sequence_slots=loaded.engine.config.n_seq_max,
                stats=loaded.engine.stats(),
            )
        if not f.valid:
            return ModelView(file=f, state=State.INVALID, problem=f.problem)
        if f.pending:
            return ModelView(file=f, state=State.PENDING, problem=f.pending)
        if f.name in self._loading:
            return ModelView(file=f, state=State.LOADING)
        if f.name in self._failed:
            return ModelView(file=f, state=State.FAILED, problem=self._failed[f.name])
        s = self.config.model_settings(f.name)
        return ModelView(file=f, state=State.AVAILABLE, context_size=s.n_ctx, sequence_slots=s.n_seq_max)

    # ---- loading ----------------------------------------------------------------------------

    @asynccontextmanager
    async def using(self, name: str) -> AsyncIterator[Engine]:
        """Hold a model (loading it first if needed): it is not unloaded or evicted meanwhile."""
        loaded = self._loaded.get(name)
        if loaded is None:
            loaded, _ = await self.load(name)
        loaded.users += 1
        try:
            yield loaded.engine
        finally:
            loaded.users -= 1
            loaded.last_used = time.monotonic()

    async def load(self, name: str) -> tuple[LoadedModel, list[str]]:
        """Load a model (idempotent); returns it and the models evicted to make room.

        The load runs as its own task, shared by everyone asking for the same model: a caller
        that is cancelled while waiting leaves it to finish and register, so a loaded model is
        never orphaned.
        """
        f = self.file(name)
        name = f.name
        if f.pending:
            f = await asyncio.to_thread(self.catalog.read_now, f)
        if not f.valid:
            raise FailedPrecondition(f.problem)
        if f.pending:
            raise FailedPrecondition(f"model {name!r} is {f.pending}; try again once the file is complete")
        if name in self._loaded:
            return self._loaded[name], []
        task = self._load_tasks.get(name)
        if task is None:
            task = asyncio.create_task(self._load(f), name=f"load-{name}")
            self._load_tasks[name] = task
            task.add_done_callback(lambda t: (self._load_tasks.pop(name, None), t.cancelled() or t.exception()))
        return await asyncio.shield(task)

    async def _load(self, f: ModelFile) -> tuple[LoadedModel, list[str]]:
        name = f.name
        async with self._load_lock:  # one load at a time: the budget check and the load agree
            if name in self._loaded:
                return self._loaded[name], []
            settings = self.config.model_settings(name)
            evicted = await self._make_room(name, f.memory_bytes(settings.n_ctx, settings.n_seq_max))
            self._loading.add(name)
            started = time.monotonic()
            try:
                loaded = await asyncio.to_thread(self._load_blocking, f)
            except LoadError as exc:
                self._failed[name] = f"{exc}; check the file (is it complete?) and the daemon log"
                await self._audit("model.load", name, "error", {"problem": self._failed[name]})
                raise FailedPrecondition(f"model {name!r} failed to load: {self._failed[name]}") from None
            except ValueError as exc:  # bad per-model settings reach llama.cpp
                self._failed[name] = str(exc)
                await self._audit("model.load", name, "error", {"problem": str(exc)})
                raise FailedPrecondition(f"model {name!r} failed to load: {exc}") from None
            finally:
                self._loading.discard(name)
            self._failed.pop(name, None)
            self._loaded[name] = loaded
            log.info("model %s loaded (%.0f MiB)", name, loaded.memory_bytes / 2**20)
            await self._audit(
                "model.load",
                name,
                "ok",
                {"seconds": round(time.monotonic() - started, 3), "memory_bytes": loaded.memory_bytes, "evicted": evicted},
            )
            return loaded, evicted

    async def _audit(self, action: Action, model: str, outcome: str, payload: dict[str, object]) -> None:
        if self.recorder is not None:
            await self.recorder.record(Entry(action, model=model, outcome=outcome, payload=payload))

    def _load_blocking(self, f: ModelFile) -> LoadedModel:
        from enclaved.engine import Engine  # numpy and llama.cpp: imported with the first model

        s = self.config.model_settings(f.name)
        engine = Engine.load(f.path, engine_config(s), n_gpu_layers=s.n_gpu_layers, name=f.name)
        engine.start()
        memory = f.memory_bytes(engine.n_ctx_seq, engine.config.n_seq_max)
        return LoadedModel(file=f, engine=engine, memory_bytes=memory, last_used=time.monotonic())

    async def _make_room(self, name: str, needed: int) -> list[str]:
        budget = self.config.memory_budget
        if not budget:
            return []
        if needed > budget:
            raise ResourceExhausted(
                f"model {name!r} needs about {needed / 2**20:.0f} MiB, more than memory_budget "
                f"({budget / 2**20:.0f} MiB); raise memory_budget or lower n_ctx / n_seq_max"
            )
        evicted = []
        while sum(m.memory_bytes for m in self._loaded.values()) + needed > budget:
            idle = [m for m in self._loaded.values() if not m.busy]
            if not idle:
                raise ResourceExhausted(
                    f"no room for model {name!r} within memory_budget: every loaded model is busy; "
                    "wait for their turns to finish, unload one, or raise memory_budget"
                )
            victim = min(idle, key=lambda m: m.last_used)
            await self._unload(victim.file.name)
            log.info("model %s evicted to make room for %s", victim.file.name, name)
            await self._audit("model.evict", victim.file.name, "ok", {"for": name, "memory_budget": budget})
            evicted.append(victim.file.name)
        return evicted

    async def unload(self, name: str) -> None:
        name = self.file(name).name
        loaded = self._loaded.get(name)
        if loaded is None:
            return
        if loaded.busy:
            raise FailedPrecondition(f"model {name!r} has turns in flight; cancel them (`enclave cancel --all`) or wait, then unload")
        await self._unload(name)
        await self._audit("model.unload", name, "ok", {})

    async def _unload(self, name: str) -> None:
        loaded = self._loaded.pop(name)
        await asyncio.to_thread(self._close, loaded)
        log.info("model %s unloaded", name)

    @staticmethod
    def _close(loaded: LoadedModel) -> None:
        loaded.engine.close()  # and the model it owns

    async def close(self) -> None:
        await self.remote.close()
        for name in list(self._loaded):
            await self._unload(name)
