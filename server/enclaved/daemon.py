"""The daemon process, and the one place that wires the layers together: the audit recorder,
the domain (models, agents, turns, the event hub), the peer handshake and the gRPC server
(``transport/``); then the single-instance lock, signals, retention and an orderly shutdown.

Layers: transport (``transport/``: gRPC on a Unix socket, the call guard, the handshake) →
services (``services/``) → domain (``domain/``) → engine (``engine/``) → llama.cpp
(``llama/``), with the audit log (``audit/``) beside them.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from enclave_contract.paths import lock_path
from enclaved import __version__
from enclaved.audit.recorder import DAEMON, Recorder
from enclaved.audit.records import Entry
from enclaved.domain.agents import AgentBook, AgentParams
from enclaved.domain.apikeys import ApiKeys
from enclaved.domain.completions import Completions
from enclaved.domain.config import Config
from enclaved.domain.hub import EventHub
from enclaved.domain.models import ModelRegistry
from enclaved.domain.runs import RunManager
from enclaved.domain.teams import TeamBook
from enclaved.domain.telemetry import Telemetry
from enclaved.domain.turns import TurnManager
from enclaved.errors import EnclaveError, Unavailable
from enclaved.limits import FdBudget, forbid_core_dumps, raise_fd_limit
from enclaved.sdnotify import Notifier
from enclaved.transport.lock import AlreadyRunning, InstanceLock
from enclaved.transport.peers import MAX_PEERS, PeerRegistry
from enclaved.transport.server import RpcServer
from enclaved.transport.unixsocket import first_lost, inode, prepare_socket_dir

if TYPE_CHECKING:
    from enclaved.transport.http.server import HttpServer

log = logging.getLogger("enclaved")

PRUNE_INTERVAL_SECONDS = 24 * 3600
ABANDONED = "enclaved stopped before the turn ended (killed or crashed); send the message again"
SOCKET_CHECK_SECONDS = 2.0  # how often the daemon checks that its sockets are still its own


class Daemon:
    def __init__(self, config: Config, socket_path: Path, budget: FdBudget) -> None:
        self.config = config
        self.socket_path = socket_path
        self.budget = budget
        self.started = time.monotonic()
        self.hub = EventHub()
        self.recorder = Recorder()
        self.models = ModelRegistry(config, self.recorder)
        self.agents = AgentBook(config.max_message_bytes, self.hub, self.recorder)
        self.telemetry = Telemetry()
        self.turns = TurnManager(self.agents, self.models, self.hub, config.max_message_bytes, self.recorder, self.telemetry)
        self.keys = ApiKeys(config.data_dir, self.recorder)
        self.completions = Completions(self.models, self.agents, self.recorder, self.telemetry)
        self.teams = TeamBook(self.recorder, known=lambda name: any(a.name == name for a in self.agents.all()))
        self.runs = RunManager(self.teams, self.agents, self.turns, self.hub, self.recorder)
        self._stop = asyncio.Event()
        self.lost_socket = False
        self._tasks: set[asyncio.Future[None]] = set()
        self.http: HttpServer | None = None  # the OpenAI-compatible API, with [http]

    async def _define_agents(self) -> None:
        """The config file's agents, then those created at run time and every transcript from
        the store; with none at all, one ``assistant`` on the first model found."""
        for a in self.config.agents:
            model = a.model or self.models.first_valid() or ""
            self.agents.define(a.name, model, a.system, a.params, a.fallbacks)
            if not model or ("@" not in model and model not in self.models.catalog.scan()):
                log.warning("agent %s uses model %r, which is not in the models folders yet", a.name, model)
        await self.agents.restore(configured={a.name for a in self.config.agents})
        if not self.agents.all():
            first = self.models.first_valid()
            if first:
                self.agents.define("assistant", first, "You are a helpful assistant.", AgentParams())
            else:
                log.warning("no agents configured and no model found: add a .gguf file to %s", self.config.models_dirs[0])

    async def _define_teams(self) -> None:
        """The config file's teams (one that is wrong stops the start, naming the field),
        then those created at run time from the store."""
        for team in self.config.teams:
            self.teams.define(team)
        await self.teams.restore(configured={t.name for t in self.config.teams})

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def request_stop(self) -> None:
        self._stop.set()

    async def serve(self) -> None:
        """Run until SIGTERM or SIGINT, then shut down gracefully."""
        self.http = self._http()
        try:
            if self.http is not None:  # first: /health says 503 until all serves; an address it cannot take stops the start
                await self.http.start(self.socket_path)
            await self._serve_all()
        finally:
            if self.http is not None:
                await self.http.stop()

    async def _serve_all(self) -> None:
        self.config.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.models.catalog.start()  # lists the folders now; headers are read on its own thread
        await self.recorder.open(self.config.data_dir, self.config.audit)
        try:
            await self._serve()
        finally:
            self.models.catalog.stop()
            await self.recorder.close()

    async def _serve(self) -> None:
        for agent, model, turn in await self.recorder.log.open_requests():
            abandoned = Entry("chat.abandoned", agent=agent, model=model, turn=turn, outcome="error", payload={"reason": ABANDONED})
            await self.recorder.record(abandoned, DAEMON)
        await self.recorder.record(Entry("daemon.start", payload={"version": __version__, "socket": str(self.socket_path)}))
        self.models.remote.start()  # [[engines]] only: without one, no network socket at all
        await self._define_agents()
        self.keys.load()
        await self._define_teams()
        # before the gRPC socket: a client that sees it can also say who it is
        peers = PeerRegistry(
            on_connect=lambda actor: self.recorder.record(Entry("client.connect"), actor),
            on_denied=lambda actor, why: self.recorder.record(
                Entry("access.denied", outcome="denied", payload={"via": "peer handshake", "reason": why}), actor
            ),
            max_peers=min(MAX_PEERS, self.budget.peers),
            max_peers_per_uid=self.budget.peers_per_uid,
        )
        await peers.start(self.socket_path)
        pruning = asyncio.create_task(self._prune_daily(), name="audit-retention")
        try:
            await self._serve_grpc(peers)
        finally:
            pruning.cancel()
            await peers.close()

    async def _watch_sockets(self, bound: dict[Path, tuple[int, int] | None]) -> None:
        lost = await first_lost(bound, SOCKET_CHECK_SECONDS)
        log.error(
            "%s was removed or replaced while enclaved ran; no client can reach it, so it stops "
            "(conversations and the audit log are kept): start enclaved again",
            lost,
        )
        self.lost_socket = True
        self.request_stop()

    async def _prune_daily(self) -> None:
        """Records past the retention period go at start and then once a day, each prune
        leaving a sealed marker of what went and why."""
        while True:
            try:
                await self.recorder.log.prune(DAEMON)
            except EnclaveError as exc:
                log.error("audit retention: %s", exc.message)
            await asyncio.sleep(PRUNE_INTERVAL_SECONDS)

    async def _serve_grpc(self, peers: PeerRegistry) -> None:
        server = RpcServer(
            models=self.models,
            agents=self.agents,
            turns=self.turns,
            hub=self.hub,
            recorder=self.recorder,
            peers=peers,
            started=self.started,
            stopping=self._stop,
            max_connections=self.budget.connections,
            keys=self.keys,
            teams=self.teams,
            runs=self.runs,
        )
        http = self.http
        await server.start(self.socket_path)
        if http is not None:
            http.set_serving(True)

        # Health follows the audit log: NOT_SERVING while it refuses writes, SERVING again
        # once it has recovered by itself.
        def on_state(error: object) -> None:
            self._spawn(server.set_serving(error is None))
            if http is not None:
                http.set_serving(error is None)

        self.recorder.log.on_state = on_state
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        log.info("enclaved listening on %s (models: %s)", self.socket_path, ", ".join(map(str, self.config.models_dirs)))
        bound = {self.socket_path: inode(self.socket_path)}
        if peers.path is not None:
            bound[peers.path] = inode(peers.path)
        watch = asyncio.create_task(self._watch_sockets(bound), name="socket-watch")
        systemd = Notifier()  # Type=notify units: ready now, a watchdog if the unit has one
        systemd.notify("READY=1")
        alive = asyncio.create_task(systemd.keep_alive(), name="sd-watchdog")
        await self._stop.wait()
        watch.cancel()

        log.info("shutting down")
        systemd.notify("STOPPING=1")
        alive.cancel()
        await server.draining()
        await self.runs.shutdown()
        if http is not None:
            http.draining()
        await asyncio.gather(self.turns.shutdown(), self.completions.shutdown())
        self.hub.close(Unavailable("enclaved is shutting down; reconnect once it is back"))
        await server.stop()
        await self.models.close()
        if inode(self.socket_path) == bound[self.socket_path]:  # never another daemon's socket
            self.socket_path.unlink()
        await self.recorder.record(Entry("daemon.stop"))
        log.info("stopped")

    def _http(self) -> HttpServer | None:
        if self.config.http is None:
            return None
        from enclaved.transport.http.server import HttpServer  # aiohttp: imported only with [http]

        return HttpServer(
            self.config.http,
            models=self.models,
            agents=self.agents,
            completions=self.completions,
            keys=self.keys,
            recorder=self.recorder,
            telemetry=self.telemetry,
        )


def run(config: Config, socket_path: Path, *, allow_core_dumps: bool = False) -> int:
    """Run the daemon in the foreground; returns the process exit code."""
    if not allow_core_dumps:
        forbid_core_dumps()
    budget = raise_fd_limit()
    prepare_socket_dir(socket_path)
    lock = InstanceLock(socket_path)
    try:
        lock.acquire()
    except AlreadyRunning as exc:
        if socket_path.exists():
            log.error("another enclaved (pid %s) is already serving %s; stop it first or use another --socket", exc.pid, socket_path)
        else:
            log.error(
                "another enclaved (pid %s) holds %s but its socket is gone: it is starting or stopping; "
                "start again in a moment, or stop pid %s",
                exc.pid,
                lock_path(socket_path),
                exc.pid,
            )
        return 1
    try:
        socket_path.unlink(missing_ok=True)  # left behind by a daemon that died; we hold the lock
        daemon = Daemon(config, socket_path, budget)
        asyncio.run(daemon.serve())
        return 1 if daemon.lost_socket else 0
    finally:
        lock.release()
