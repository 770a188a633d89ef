"""One URL of a remote engine: its HTTP client, its health, its load and its latency."""

from __future__ import annotations

import json
import logging
import ssl
import statistics
from collections import deque
from dataclasses import dataclass

import aiohttp

from enclaved.engine.remote.breaker import Breaker, Circuit
from enclaved.engine.remote.settings import EngineSettings
from enclaved.engine.remote.tokens import context_of

log = logging.getLogger("enclaved.engines")
LATENCY_SAMPLES = 256  # times to first token kept for p50/p95


@dataclass(frozen=True)
class ReplicaView:
    url: str
    healthy: bool
    circuit: str
    in_flight: int
    latency_p50_ms: float
    latency_p95_ms: float


def _tls(settings: EngineSettings) -> ssl.SSLContext | bool:
    tls = settings.tls
    if tls is None:
        return True  # the system's CA store for https URLs
    context = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
    if tls.cert_file and tls.key_file:
        context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    return context


class Replica:
    def __init__(self, url: str, settings: EngineSettings) -> None:
        self.url = url
        self.settings = settings
        self.in_flight = 0
        self.healthy = True  # until a probe or a request says otherwise
        self.problem = ""
        self.served = 0  # requests that reached their first token here
        self._breakers: dict[str, Breaker] = {}
        self._latency: deque[float] = deque(maxlen=LATENCY_SAMPLES)
        # the connect timeout is the transport's; every other deadline is the engine's (client.py)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=settings.connect_timeout)
        headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
        connector: aiohttp.BaseConnector
        if url.startswith("unix:"):
            connector = aiohttp.UnixConnector(path=url[5:], limit=settings.max_concurrency + 1)
            self.base = "http://localhost/v1"
        else:
            connector = aiohttp.TCPConnector(ssl=_tls(settings), limit=settings.max_concurrency + 1)
            self.base = url
        self.root = self.base.removesuffix("/v1")  # the server's own endpoints (tokenize) sit beside /v1
        # trust_env=False: no proxy or netrc from the environment; enclave talks to this URL only
        self.client = aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers, trust_env=False)

    def breaker(self, model: str) -> Breaker:
        found = self._breakers.get(model)
        if found is None:
            label = f"engine {self.settings.name} replica {self.url} model {model}"
            found = self._breakers[model] = Breaker(label, self.settings.breaker_failures, self.settings.breaker_cooldown)
        return found

    def circuit(self, model: str) -> Circuit:
        return self.breaker(model).current()

    def has_room(self) -> bool:
        return self.in_flight < self.settings.max_concurrency

    def first_token_after(self, seconds: float) -> None:
        self._latency.append(seconds * 1000)
        self.served += 1
        self.mark(True)  # it answers: healthy, whatever the last probe said

    def mark(self, healthy: bool, problem: str = "") -> None:
        if healthy != self.healthy:
            log.warning(
                "engine %s replica %s is %s%s",
                self.settings.name,
                self.url,
                "healthy" if healthy else "unhealthy",
                f": {problem}" if problem else "",
            )
        self.healthy, self.problem = healthy, problem

    async def probe(self) -> dict[str, int]:
        """GET /models: marks the replica healthy or not; returns the model ids it lists, each
        with the context its entry names (0 when none).

        A replica that is serving is not probed, and a probe that fails while a request
        started meanwhile counts for nothing: some servers (llama-cpp-python's) answer
        /models only between completions, and a busy replica is not a dead one."""
        if self.in_flight:
            return {}
        timeout = aiohttp.ClientTimeout(total=self.settings.connect_timeout + self.settings.idle_timeout)
        try:
            async with self.client.get(f"{self.base}/models", timeout=timeout) as reply:
                status = reply.status
                body = await reply.read() if status == 200 else b""
        except (aiohttp.ClientError, TimeoutError) as exc:
            if not self.in_flight:
                self.mark(False, f"unreachable ({type(exc).__name__})")
            return {}
        if status != 200:
            self.mark(False, f"GET /models answered HTTP {status}")
            return {}
        self.mark(True)
        try:
            return {str(m["id"]): context_of(m) for m in json.loads(body).get("data", []) if isinstance(m, dict) and "id" in m}
        except (ValueError, AttributeError):
            return {}

    def view(self, model: str) -> ReplicaView:
        samples = sorted(self._latency)
        p50 = statistics.median(samples) if samples else 0.0
        p95 = samples[min(len(samples) - 1, int(len(samples) * 0.95))] if samples else 0.0
        return ReplicaView(self.url, self.healthy, self.circuit(model).value, self.in_flight, p50, p95)

    async def close(self) -> None:
        await self.client.close()
