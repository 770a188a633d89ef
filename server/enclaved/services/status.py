"""enclave.v1.Status"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator

import grpc

from enclave_contract.v1 import status_pb2, status_pb2_grpc
from enclaved import __version__
from enclaved.domain.agents import AgentBook
from enclaved.domain.models import ModelRegistry
from enclaved.domain.turns import TurnManager
from enclaved.errors import InvalidArgument, Unavailable
from enclaved.services import convert

MIN_INTERVAL_SECONDS = 0.1
MAX_INTERVAL_SECONDS = 3600.0


class StatusService(status_pb2_grpc.StatusServicer):
    def __init__(
        self,
        models: ModelRegistry,
        agents: AgentBook,
        turns: TurnManager,
        started: float,
        stopping: asyncio.Event,
    ) -> None:
        self.models = models
        self.agents = agents
        self.turns = turns
        self.started = started
        self.stopping = stopping

    def snapshot(self) -> status_pb2.StatusSnapshot:
        return status_pb2.StatusSnapshot(
            version=__version__,
            uptime_seconds=time.monotonic() - self.started,
            models=[convert.model_status(v, self.turns.telemetry) for v in self.models.views()]
            + [convert.remote_model_status(v, self.turns.telemetry) for v in self.models.remote.views()],
            agents=len(self.agents.all()),
            active_turns=self.turns.active,
            memory_budget_bytes=self.models.config.memory_budget,
        )

    async def Status(
        self, request: status_pb2.StatusRequest, context: grpc.aio.ServicerContext
    ) -> AsyncGenerator[status_pb2.StatusSnapshot, None]:
        interval = request.interval_seconds or 1.0
        if not MIN_INTERVAL_SECONDS <= interval <= MAX_INTERVAL_SECONDS:  # NaN too: it would break asyncio's timers
            raise InvalidArgument(
                f"interval_seconds must be between {MIN_INTERVAL_SECONDS:g} and {MAX_INTERVAL_SECONDS:g}; send 1 for once a second"
            )
        while True:
            yield self.snapshot()
            if request.once:
                return
            try:
                await asyncio.wait_for(self.stopping.wait(), interval)
            except TimeoutError:
                continue
            raise Unavailable("enclaved is shutting down; reconnect once it is back")
