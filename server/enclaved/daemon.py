"""The daemon process: single-instance lock, private Unix socket, gRPC server, shutdown.

Layers: transport (this module: gRPC on a Unix socket) → services (``services/``) → domain
(``models``, ``agents``, ``turns``, ``hub``, ``engine``) → llama.cpp (``llama``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import stat
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from enclave_contract.limits import MAX_SOCKET_PATH
from enclave_contract.v1 import (
    agents_pb2,
    agents_pb2_grpc,
    audit_pb2,
    audit_pb2_grpc,
    chat_pb2,
    chat_pb2_grpc,
    models_pb2,
    models_pb2_grpc,
    status_pb2,
    status_pb2_grpc,
)
from enclaved import __version__
from enclaved.audit.recorder import DAEMON, Recorder
from enclaved.audit.records import Entry
from enclaved.domain.agents import AgentBook, AgentParams
from enclaved.domain.config import Config
from enclaved.domain.hub import EventHub
from enclaved.domain.models import ModelRegistry
from enclaved.domain.turns import TurnManager
from enclaved.errors import ConfigError, EnclaveError, Unavailable
from enclaved.services.agents import AgentsService
from enclaved.services.audit import AuditService
from enclaved.services.chat import ChatService
from enclaved.services.models import ModelsService
from enclaved.services.status import StatusService
from enclaved.transport.lock import AlreadyRunning, InstanceLock
from enclaved.transport.peers import PeerRegistry
from enclaved.transport.unixsocket import umask

log = logging.getLogger("enclaved")

SERVICE_NAMES = [
    models_pb2.DESCRIPTOR.services_by_name["Models"].full_name,
    agents_pb2.DESCRIPTOR.services_by_name["Agents"].full_name,
    chat_pb2.DESCRIPTOR.services_by_name["Chat"].full_name,
    status_pb2.DESCRIPTOR.services_by_name["Status"].full_name,
    audit_pb2.DESCRIPTOR.services_by_name["Audit"].full_name,
]
SHUTDOWN_GRACE_SECONDS = 3.0
PRUNE_INTERVAL_SECONDS = 24 * 3600


def prepare_socket_dir(socket_path: Path) -> None:
    """Create the socket's folder 0700; refuse a path that is too long or not a socket."""
    if len(str(socket_path).encode()) > MAX_SOCKET_PATH:
        raise ConfigError(f"socket path {socket_path} is longer than {MAX_SOCKET_PATH} bytes; choose a shorter --socket")
    folder = socket_path.parent
    if not folder.exists():
        with umask(0o077):
            folder.mkdir(parents=True, mode=0o700)
    elif folder.stat().st_uid == os.getuid() and folder.stat().st_mode & 0o077 and not folder.stat().st_mode & stat.S_ISVTX:
        log.warning("socket folder %s is open to other users; the socket itself is 0600", folder)
    if socket_path.exists() and not stat.S_ISSOCK(socket_path.stat().st_mode):
        raise ConfigError(f"{socket_path} exists and is not a socket; remove it or choose another --socket")


class Daemon:
    def __init__(self, config: Config, socket_path: Path) -> None:
        self.config = config
        self.socket_path = socket_path
        self.started = time.monotonic()
        self.hub = EventHub()
        self.recorder = Recorder()
        self.peers: PeerRegistry | None = None  # the handshake registry, once serving
        self.models = ModelRegistry(config, self.recorder)
        self.agents = AgentBook(config.max_message_bytes, self.hub, self.recorder)
        self.turns = TurnManager(self.agents, self.models, self.hub, config.max_message_bytes, self.recorder)
        self.health = health_aio.HealthServicer()
        self._stop = asyncio.Event()

    async def _define_agents(self) -> None:
        """The config file's agents, then those created at run time and every transcript from
        the store; with none at all, one ``assistant`` on the first model found."""
        for a in self.config.agents:
            model = a.model or self.models.first_valid() or ""
            self.agents.define(a.name, model, a.system, a.params)
            if not model or model not in self.models.catalog.scan():
                log.warning("agent %s uses model %r, which is not in the models folders yet", a.name, model)
        await self.agents.restore(configured={a.name for a in self.config.agents})
        if not self.agents.all():
            first = self.models.first_valid()
            if first:
                self.agents.define("assistant", first, "You are a helpful assistant.", AgentParams())
            else:
                log.warning("no agents configured and no model found: add a .gguf file to %s", self.config.models_dirs[0])

    def _server(self) -> grpc.aio.Server:
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        who = (self.recorder, self.peers)
        models_pb2_grpc.add_ModelsServicer_to_server(ModelsService(self.models, *who), server)
        agents_pb2_grpc.add_AgentsServicer_to_server(AgentsService(self.agents, self.models, self.turns, *who), server)
        chat_pb2_grpc.add_ChatServicer_to_server(ChatService(self.agents, self.turns, self.hub, *who), server)
        status = StatusService(self.models, self.agents, self.turns, self.started, self._stop, *who)
        status_pb2_grpc.add_StatusServicer_to_server(status, server)
        audit_pb2_grpc.add_AuditServicer_to_server(AuditService(*who), server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            [*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME], server
        )
        return server

    def request_stop(self) -> None:
        self._stop.set()

    async def serve(self) -> None:
        """Run until SIGTERM or SIGINT, then shut down gracefully."""
        self.config.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        await self.recorder.open(self.config.data_dir, self.config.audit)
        try:
            await self._serve()
        finally:
            await self.recorder.close()

    async def _serve(self) -> None:
        await self.recorder.record(Entry("daemon.start", payload={"version": __version__, "socket": str(self.socket_path)}))
        await self._define_agents()
        # before the gRPC socket: a client that sees it can also say who it is
        self.peers = PeerRegistry(
            on_connect=lambda actor: self.recorder.record(Entry("client.connect"), actor),
            on_denied=lambda actor, why: self.recorder.record(
                Entry("access.denied", outcome="denied", payload={"via": "peer handshake", "reason": why}), actor
            ),
        )
        await self.peers.start(self.socket_path)
        pruning = asyncio.create_task(self._prune_daily(), name="audit-retention")
        try:
            await self._serve_grpc()
        finally:
            pruning.cancel()
            await self.peers.close()

    async def _prune_daily(self) -> None:
        """Records past the retention period go at start and then once a day, each prune
        leaving a sealed marker of what went and why."""
        while True:
            try:
                await self.recorder.log.prune(DAEMON)
            except EnclaveError as exc:
                log.error("audit retention: %s", exc.message)
            await asyncio.sleep(PRUNE_INTERVAL_SECONDS)

    async def _serve_grpc(self) -> None:
        server = self._server()
        # gRPC creates the socket with the process umask: 0600 from the first instant.
        with umask(0o177):
            server.add_insecure_port(f"unix:{self.socket_path}")
        os.chmod(self.socket_path, 0o600)
        await server.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        for name in SERVICE_NAMES:
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        await self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        log.info("enclaved listening on %s (models: %s)", self.socket_path, ", ".join(map(str, self.config.models_dirs)))
        await self._stop.wait()

        log.info("shutting down")
        await self.health.enter_graceful_shutdown()
        await self.turns.shutdown()
        self.hub.close(Unavailable("enclaved is shutting down; reconnect once it is back"))
        await server.stop(SHUTDOWN_GRACE_SECONDS)
        await self.models.close()
        self.socket_path.unlink(missing_ok=True)
        await self.recorder.record(Entry("daemon.stop"))
        log.info("stopped")


def run(config: Config, socket_path: Path) -> int:
    """Run the daemon in the foreground; returns the process exit code."""
    prepare_socket_dir(socket_path)
    lock = InstanceLock(socket_path)
    try:
        lock.acquire()
    except AlreadyRunning as exc:
        log.error("another enclaved (pid %s) is already serving %s; stop it first or use another --socket", exc.pid, socket_path)
        return 1
    try:
        socket_path.unlink(missing_ok=True)  # left behind by a daemon that died; we hold the lock
        asyncio.run(Daemon(config, socket_path).serve())
        return 0
    finally:
        lock.release()
