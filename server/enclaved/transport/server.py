"""The gRPC server on the daemon's Unix socket: the enclave services behind the call
guard (``guard.py``), plus gRPC health checking and reflection."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from enclave_contract.v1 import (
    agents_pb2,
    agents_pb2_grpc,
    audit_pb2,
    audit_pb2_grpc,
    chat_pb2,
    chat_pb2_grpc,
    keys_pb2,
    keys_pb2_grpc,
    models_pb2,
    models_pb2_grpc,
    status_pb2,
    status_pb2_grpc,
    teams_pb2,
    teams_pb2_grpc,
)
from enclaved.audit.recorder import Recorder
from enclaved.domain.agents import AgentBook
from enclaved.domain.apikeys import ApiKeys
from enclaved.domain.hub import EventHub
from enclaved.domain.models import ModelRegistry
from enclaved.domain.runs import RunManager
from enclaved.domain.teams import TeamBook
from enclaved.domain.turns import TurnManager
from enclaved.services.agents import AgentsService
from enclaved.services.audit import AuditService
from enclaved.services.chat import ChatService
from enclaved.services.keys import KeysService
from enclaved.services.models import ModelsService
from enclaved.services.status import StatusService
from enclaved.services.teams import TeamsService
from enclaved.transport.guard import CallGuard
from enclaved.transport.peers import PeerRegistry
from enclaved.transport.unixsocket import umask

SERVICE_NAMES = [
    models_pb2.DESCRIPTOR.services_by_name["Models"].full_name,
    agents_pb2.DESCRIPTOR.services_by_name["Agents"].full_name,
    chat_pb2.DESCRIPTOR.services_by_name["Chat"].full_name,
    status_pb2.DESCRIPTOR.services_by_name["Status"].full_name,
    audit_pb2.DESCRIPTOR.services_by_name["Audit"].full_name,
    keys_pb2.DESCRIPTOR.services_by_name["Keys"].full_name,
    teams_pb2.DESCRIPTOR.services_by_name["Teams"].full_name,
]
HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
SHUTDOWN_GRACE_SECONDS = 3.0  # calls still running then are cancelled
# gRPC closes a connection as soon as its last call has ended; a client still acknowledging the
# data before the status then fails on a broken pipe instead of reading why its stream ended
STATUS_DRAIN_SECONDS = 0.2


class RpcServer:
    """Built with everything the services need; ``start`` binds the socket and serves."""

    def __init__(
        self,
        *,
        models: ModelRegistry,
        agents: AgentBook,
        turns: TurnManager,
        hub: EventHub,
        recorder: Recorder,
        peers: PeerRegistry,
        started: float,
        stopping: asyncio.Event,
        max_connections: int,
        keys: ApiKeys,
        teams: TeamBook,
        runs: RunManager,
    ) -> None:
        self.health = health_aio.HealthServicer()
        options = [("grpc.so_reuseport", 0), ("grpc.max_allowed_incoming_connections", max_connections)]
        server = grpc.aio.server(interceptors=[CallGuard(recorder, peers, SERVICE_NAMES)], options=options)
        models_pb2_grpc.add_ModelsServicer_to_server(ModelsService(models), server)
        agents_pb2_grpc.add_AgentsServicer_to_server(AgentsService(agents, models, turns), server)
        chat_pb2_grpc.add_ChatServicer_to_server(ChatService(agents, turns, hub), server)
        status_pb2_grpc.add_StatusServicer_to_server(StatusService(models, agents, turns, started, stopping), server)
        audit_pb2_grpc.add_AuditServicer_to_server(AuditService(recorder), server)
        keys_pb2_grpc.add_KeysServicer_to_server(KeysService(keys), server)
        teams_pb2_grpc.add_TeamsServicer_to_server(TeamsService(teams, runs, hub), server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection([*SERVICE_NAMES, HEALTH_SERVICE, reflection.SERVICE_NAME], server)
        self._server = server

    async def start(self, socket_path: Path) -> None:
        """Listen on ``socket_path`` (0600 from the first instant) and report every service
        as serving."""
        # gRPC creates the socket with the process umask.
        with umask(0o177):
            self._server.add_insecure_port(f"unix:{socket_path}")
        os.chmod(socket_path, 0o600)
        await self._server.start()
        await self.set_serving(True)

    async def set_serving(self, serving: bool) -> None:
        """Report every service as serving or not (the audit log refuses writes meanwhile:
        every call would fail with DATA_LOSS)."""
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ["", *SERVICE_NAMES]:
            await self.health.set(name, status)

    async def draining(self) -> None:
        """Report every service as not serving; calls still run."""
        await self.health.enter_graceful_shutdown()

    async def stop(self) -> None:
        """Let clients read how their streams ended (``STATUS_DRAIN_SECONDS``); then refuse new
        calls, give running ones ``SHUTDOWN_GRACE_SECONDS`` and cancel what is left."""
        await asyncio.sleep(STATUS_DRAIN_SECONDS)
        await self._server.stop(SHUTDOWN_GRACE_SECONDS)
