"""Remote models (``model@engine``): the configured engines, what clients see of them, and
sending a conversation to one.

The HTTP client is imported in ``start`` and only when there is an ``[[engines]]`` block:
without one the daemon loads no HTTP library and opens no network socket, and no health
probe runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from enclaved.domain.engines import split_model
from enclaved.engine import SamplingSettings, Sink
from enclaved.engine.remote.settings import EngineSettings
from enclaved.errors import NotFound, Unavailable

if TYPE_CHECKING:
    from enclaved.engine.remote.client import ChatRequest, RemoteEngine
    from enclaved.engine.remote.replica import ReplicaView


@dataclass(frozen=True)
class RemoteModelView:
    """A remote model as clients see it: usable now or why not, and each replica's figures."""

    name: str  # "model@engine"
    engine: str
    problem: str  # why it cannot serve now; "" when it can
    in_flight: int
    replicas: list[ReplicaView]


class RemoteModels:
    def __init__(self, engines: list[EngineSettings]) -> None:
        self._settings = engines
        self._engines: dict[str, RemoteEngine] = {}

    def start(self) -> None:
        """Create the engines and start their health probes (needs the running loop)."""
        if not self._settings:
            return
        from enclaved.engine.remote.client import RemoteEngine  # aiohttp: only with [[engines]]

        for s in self._settings:
            self._engines[s.name] = engine = RemoteEngine(s)
            engine.start()

    def engine(self, name: str) -> tuple[RemoteEngine, str]:
        """The engine and model a ``model@engine`` name means; NotFound if none."""
        model, engine_name = split_model(name)
        engine = self._engines.get(engine_name)
        if engine is None:
            raise NotFound(f"no engine named {engine_name!r}; add an [[engines]] block for it to the config")
        if engine.models and model not in engine.models:
            raise NotFound(f"engine {engine_name} has no model {model!r}; it serves {', '.join(engine.models)}")
        return engine, model

    def context(self, name: str) -> int:
        """The tokens ``model@engine``'s context holds; 0 when unknown (nothing is trimmed)."""
        engine, model = self.engine(name)
        return engine.context(model)

    async def count_tokens(self, name: str, texts: list[str]) -> tuple[list[int], bool]:
        """Each text's tokens, and whether the engine counted them (False: estimated)."""
        engine, model = self.engine(name)
        return await engine.count_tokens(model, texts)

    def submit(
        self, name: str, messages: list[dict[str, str]], sampling: SamplingSettings, max_tokens: int, stops: list[str], sink: Sink
    ) -> tuple[RemoteEngine, ChatRequest]:
        """Send a conversation to ``model@engine``; its events go to ``sink``. NotFound or
        Unavailable when no replica can take it now (so a fallback can)."""
        from enclaved.engine.remote.client import ChatRequest

        engine, model = self.engine(name)
        refusal = engine.refusal(model)
        if refusal:
            raise Unavailable(refusal)
        request = ChatRequest(model, messages, sampling, max_tokens, stops, sink)
        engine.submit(request)
        return engine, request

    def views(self) -> list[RemoteModelView]:
        out = []
        for engine in self._engines.values():
            for model in engine.models:
                replicas = engine.replica_views(model)
                problem = engine.refusal(model)
                if not problem and not any(r.healthy for r in replicas):
                    problem = f"engine {engine.name}: no replica answered its last health probe"
                out.append(RemoteModelView(f"{model}@{engine.name}", engine.name, problem, engine.in_flight(), replicas))
        return out

    async def close(self) -> None:
        for engine in self._engines.values():
            await engine.close()
