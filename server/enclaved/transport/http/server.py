"""The HTTP listener: one aiohttp ``AppRunner`` serving a Unix socket (0600, beside the gRPC
one) and, when configured, a TCP address; off unless the config has ``[http]``.

``handle_signals=False``: enclaved keeps its own SIGTERM/SIGINT handling.
``handler_cancellation=True``: a client that disconnects cancels its handler, and with it its
turn, as a gRPC stream does.

Every request but ``GET /health`` needs ``Authorization: Bearer KEY`` (Unix socket too): the
guard middleware sets ``ACTOR`` to the key's name (``auth=apikey``, with the peer's uid and pid
on the Unix socket), so the turn's audit records carry it; a bad or missing key is a 401 and
an ``access.denied`` record, at most one a second per caller.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from enclaved.audit.recorder import ACTOR, Recorder
from enclaved.audit.records import Actor, Entry, user_name
from enclaved.domain.agents import AgentBook
from enclaved.domain.apikeys import ApiKeys
from enclaved.domain.completions import Completions
from enclaved.domain.httpconfig import HttpSettings
from enclaved.domain.models import ModelRegistry
from enclaved.domain.telemetry import Telemetry
from enclaved.domain.throttle import Throttle
from enclaved.errors import EnclaveError
from enclaved.transport.http.errors import INTERNAL_MESSAGE, error_response, from_domain, json_response
from enclaved.transport.http.metrics import Metrics
from enclaved.transport.http.openai import OpenAiRoutes
from enclaved.transport.unixsocket import inode, umask

log = logging.getLogger("enclaved.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SHUTDOWN_GRACE_SECONDS = 3.0
_PEERCRED = struct.Struct("3i")  # pid, uid, gid
_HTTP_MESSAGES = {
    404: "no such endpoint; enclave serves /v1/models, /v1/chat/completions, /v1/completions, /health and /metrics",
    405: "this endpoint does not take that method",
    413: "the request body is too large; send less, or raise [http] max_body_bytes",
}


class HttpServer:
    def __init__(
        self,
        settings: HttpSettings,
        *,
        models: ModelRegistry,
        agents: AgentBook,
        completions: Completions,
        keys: ApiKeys,
        recorder: Recorder,
        telemetry: Telemetry,
    ) -> None:
        self.settings = settings
        self.keys = keys
        self.recorder = recorder
        self.serving = False
        self.stopping = False
        self._denials = Throttle()
        app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[self._guard])
        app.router.add_get("/health", self.health)
        OpenAiRoutes(models, agents, completions).add_to(app)
        self.metrics = Metrics(models, telemetry) if settings.metrics else None
        if self.metrics is not None:
            app.router.add_get("/metrics", self.metrics_page)
        self._runner = web.AppRunner(app, handle_signals=False, handler_cancellation=True, access_log=None)
        self.socket_path: Path | None = None
        self._inode: tuple[int, int] | None = None

    async def start(self, grpc_socket: Path) -> None:
        """Listen; ``/health`` says 503 (starting) until ``set_serving(True)``."""
        await self._runner.setup()
        self.socket_path = self.settings.socket_path(grpc_socket)
        if self.socket_path is not None:
            try:
                with umask(0o177):  # private from the first instant
                    await web.UnixSite(self._runner, str(self.socket_path)).start()
            except OSError as exc:
                raise EnclaveError(f"[http] socket: cannot listen on {self.socket_path} ({exc.strerror}); pick another path") from None
            os.chmod(self.socket_path, 0o600)
            self._inode = inode(self.socket_path)
            log.info("HTTP API on %s", self.socket_path)
        if self.settings.host:
            try:
                await web.TCPSite(self._runner, self.settings.host, self.settings.port, reuse_address=True).start()
            except OSError as exc:
                raise EnclaveError(f"[http] listen: cannot listen on {self.settings.host}:{self.settings.port} ({exc.strerror})") from None
            log.info("HTTP API on %s:%d", self.settings.host, self.settings.port)

    def set_serving(self, serving: bool) -> None:
        self.serving = serving

    def draining(self) -> None:
        self.serving, self.stopping = False, True

    async def stop(self) -> None:
        if self._runner.server is not None:  # it was set up
            await self._runner.shutdown()
            await self._runner.cleanup()
        if self.socket_path is not None and self._inode is not None and inode(self.socket_path) == self._inode:
            self.socket_path.unlink()

    # ---- handlers ---------------------------------------------------------------------------

    async def health(self, request: web.Request) -> web.Response:
        return json_response({"status": "ok"}) if self.serving else self._unavailable()

    def _unavailable(self) -> web.Response:
        if self.stopping:
            why = "enclaved is shutting down; try again once it is back"
        else:
            why = "enclaved is not serving yet (starting, or its audit log refuses writes); try again in a moment"
        return error_response(503, why, code="unavailable")

    async def metrics_page(self, request: web.Request) -> web.Response:
        assert self.metrics is not None
        body, content_type = self.metrics.render()
        return web.Response(body=body, headers={"Content-Type": content_type})

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == "/health":
            return await handler(request)
        if not self.serving:
            return self._unavailable()
        actor = self._actor(request)
        if actor is None:
            return await self._deny(request)
        token = ACTOR.set(actor)
        try:
            return await handler(request)
        except EnclaveError as exc:
            return from_domain(exc)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return error_response(exc.status, _HTTP_MESSAGES.get(exc.status, exc.reason), code=_code(exc.status))
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            return error_response(500, INTERNAL_MESSAGE, code="internal")
        finally:
            ACTOR.reset(token)

    def _actor(self, request: web.Request) -> Actor | None:
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        found = self.keys.check(key.strip()) if scheme.lower() == "bearer" else None
        if found is None:
            return None
        uid, pid = _peer(request)
        return Actor("apikey", found.name, uid, pid)

    async def _deny(self, request: web.Request) -> web.Response:
        uid, pid = _peer(request)
        who = uid if uid is not None else request.remote
        left_out = self._denials.admit(("http", who))
        why = "no API key" if "Authorization" not in request.headers else "an API key that is not valid"
        if left_out is not None:
            payload = {"via": "http", "path": request.path[:200], "reason": why, "refused_since_last_record": left_out}
            actor = Actor("apikey", user_name(uid) if uid is not None else None, uid, pid)
            try:
                await self.recorder.record(Entry("access.denied", outcome="denied", payload=payload), actor)
            except EnclaveError as exc:
                return from_domain(exc)
        return error_response(
            401, f"{why}; send Authorization: Bearer KEY with a key from `enclave keys create NAME`", code="invalid_api_key"
        )


def _code(status: int) -> str:
    return {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(status, "http_error")


def _peer(request: web.Request) -> tuple[int | None, int | None]:
    """The uid and pid of the process at the other end of a Unix socket; (None, None) on TCP."""
    sock = request.transport.get_extra_info("socket") if request.transport is not None else None
    if sock is None or sock.family != socket.AF_UNIX:
        return None, None
    try:
        pid, uid, _ = _PEERCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))
    except OSError:
        return None, None
    return uid, pid
