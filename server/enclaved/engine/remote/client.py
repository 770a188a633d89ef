"""A remote engine: chat completions streamed over the OpenAI-compatible HTTP API, turned into
the same events a local engine sends (``Admitted``, ``Generating``, ``Text``, one
``TurnResult`` or ``Failed``).

aiohttp's ``ClientSession`` streams the response; enclave is the only retry loop (the session
retries nothing) and enforces its own deadlines, since an HTTP read timeout is per read, not per
stream: connect (aiohttp), first token, the idle gap between chunks and the total, all with one
``asyncio.timeout`` that is moved after each chunk. Retries happen only before the first token;
after it a failure ends the request with ``Failed(started=True)``: two replies are never
joined. Cancelling a request cancels its task, which closes the HTTP stream at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass, field

import aiohttp

from enclaved.engine.remote import sse
from enclaved.engine.remote.batching import TextBatcher
from enclaved.engine.remote.breaker import Circuit
from enclaved.engine.remote.counter import TokenCounter
from enclaved.engine.remote.replica import Replica, ReplicaView
from enclaved.engine.remote.settings import EngineSettings
from enclaved.engine.requests import Admitted, Failed, Finish, Generating, SamplingSettings, Sink, TurnResult

log = logging.getLogger("enclaved.engines")
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_FINISH = {"stop": Finish.END_OF_TURN, "length": Finish.MAX_TOKENS, "eos": Finish.END_OF_TURN}


@dataclass
class ChatRequest:
    """A conversation to continue on ``model``. ``sink`` gets every event on the event loop."""

    model: str
    messages: list[dict[str, str]]
    sampling: SamplingSettings
    max_tokens: int
    stops: list[str]
    sink: Sink
    cancelled: bool = False
    replica: str = ""  # the URL that served it, once the first token came
    attempts: int = 0
    streaming: bool = False  # the first token came
    tokens: int = 0  # text chunks received (the token count when the engine sends no usage)
    running: bool = False  # its task has started: cancelling the task reaches its handler
    submitted_at: float = field(default_factory=time.monotonic)


class _Failure(Exception):
    def __init__(self, message: str, *, retry: bool, counts: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry = retry  # worth another attempt (before the first token)
        self.counts = counts  # a fault of the replica: counts towards its breaker
        self.retry_after = retry_after


def _retry_after(response: aiohttp.ClientResponse) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date or nothing: the backoff decides


def _status_failure(response: aiohttp.ClientResponse, engine: str, url: str, model: str) -> _Failure:
    code = response.status
    where = f"engine {engine} ({url})"
    if code == 401 or code == 403:
        return _Failure(f"{where} refused the key (HTTP {code}); check api_key_file", retry=False, counts=False)
    if code == 404:
        return _Failure(f"{where} has no model {model!r} (HTTP 404); check the engine's models", retry=False, counts=False)
    if code in RETRY_STATUS:
        return _Failure(f"{where} answered HTTP {code}", retry=True, counts=code != 429, retry_after=_retry_after(response))
    return _Failure(f"{where} rejected the request (HTTP {code})", retry=False, counts=False)


class RemoteEngine:
    def __init__(self, settings: EngineSettings) -> None:
        self.settings = settings
        self.name = settings.name
        self.replicas = [Replica(u, settings) for u in settings.urls]
        self.discovered: tuple[str, ...] = ()  # from /v1/models, when the block lists none
        self.contexts: dict[str, int] = {}  # model → the context /v1/models names for it
        self.counter = TokenCounter(self.name)
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._probing: asyncio.Task[None] | None = None

    # ---- models and health ------------------------------------------------------------------

    @property
    def models(self) -> tuple[str, ...]:
        return self.settings.models or self.discovered

    def start(self) -> None:
        self._probing = asyncio.create_task(self._probe_forever(), name=f"engine-{self.name}-health")

    async def _probe_forever(self) -> None:
        while True:
            found = await asyncio.gather(*(r.probe() for r in self.replicas), return_exceptions=True)
            for r, outcome in zip(self.replicas, found):
                if isinstance(outcome, BaseException):
                    r.mark(False, f"its health probe failed ({type(outcome).__name__})")
            listed = [ids for ids in found if isinstance(ids, dict)]
            if any(listed) and not self.settings.models:
                self.discovered = tuple(sorted({m for ids in listed for m in ids}))
            for ids in listed:  # replicas of one engine serve the same model: the smallest context holds
                for model, context in ids.items():
                    if context:
                        self.contexts[model] = min(context, self.contexts.get(model, context))
            await asyncio.sleep(self.settings.health_interval)

    def context(self, model: str) -> int:
        """The tokens ``model``'s context holds: the block's ``context``, else what /v1/models
        says; 0 when neither does."""
        return self.settings.context or self.contexts.get(model, 0)

    async def count_tokens(self, model: str, texts: list[str]) -> tuple[list[int], bool]:
        """Each text's tokens by the engine's tokenizer, on its least-busy replica, or estimated
        (False); see ``tokens``."""
        replica = min(self.replicas, key=lambda r: (not r.healthy, r.in_flight))
        return await self.counter.count(replica.client, replica.root, model, texts)

    def replica_views(self, model: str) -> list[ReplicaView]:
        return [r.view(model) for r in self.replicas]

    def in_flight(self) -> int:
        return sum(r.in_flight for r in self.replicas)

    def _pick(self, model: str, tried: dict[str, int]) -> Replica | None:
        """The least-busy replica whose circuit lets a request through, preferring ones this
        request has not tried and ones the last probe found healthy."""
        ready = [r for r in self.replicas if r.has_room() and r.breaker(model).allows()]
        return min(ready, key=lambda r: (tried.get(r.url, 0), not r.healthy, r.in_flight), default=None)

    def refusal(self, model: str) -> str:
        """Why no replica takes ``model`` now, or "" when one does."""
        if any(r.has_room() and r.breaker(model).allows() for r in self.replicas):
            return ""
        if all(r.circuit(model) is not Circuit.CLOSED for r in self.replicas):
            return f"engine {self.name}: the circuit for {model} is open on every replica"
        return f"engine {self.name}: every replica is at max_concurrency ({self.settings.max_concurrency})"

    # ---- requests ---------------------------------------------------------------------------

    def submit(self, request: ChatRequest) -> None:
        task = asyncio.create_task(self._run(request), name=f"engine-{self.name}-request")
        self._tasks[id(request)] = task
        task.add_done_callback(lambda _: self._tasks.pop(id(request), None))

    def cancel(self, request: ChatRequest) -> None:
        request.cancelled = True
        task = self._tasks.get(id(request))
        if task is not None and request.running:  # one not started yet sees ``cancelled`` first
            task.cancel()  # closes the HTTP stream: the engine frees its slot

    async def _run(self, request: ChatRequest) -> None:
        s = self.settings
        total = request.submitted_at + s.total_timeout
        tried: dict[str, int] = {}
        request.running = True
        if request.cancelled:
            request.sink(TurnResult(Finish.CANCELLED))
            return
        try:
            while True:
                replica = self._pick(request.model, tried)
                if replica is None:
                    raise _Failure(self.refusal(request.model), retry=False, counts=False)
                tried[replica.url] = tried.get(replica.url, 0) + 1
                request.attempts += 1
                try:
                    await self._attempt(replica, request, total)
                    return
                except _Failure as exc:
                    if request.streaming or not exc.retry:
                        raise
                    delay = (
                        exc.retry_after
                        if exc.retry_after is not None
                        else s.backoff * 2 ** (request.attempts - 1) * random.uniform(0.5, 1.0)
                    )
                    spent = time.monotonic() + delay - request.submitted_at
                    if request.attempts > s.retries or spent > s.retry_time or time.monotonic() + delay > total:
                        raise _Failure(f"{exc.message}; gave up after {request.attempts} attempt(s)", retry=False, counts=False) from None
                    log.info("%s; retrying in %.2f s (attempt %d)", exc.message, delay, request.attempts + 1)
                    await asyncio.sleep(delay)
        except _Failure as exc:
            request.sink(Failed(exc.message, started=request.streaming))
        except asyncio.CancelledError:
            request.sink(TurnResult(Finish.CANCELLED, completion_tokens=request.tokens))

    async def _attempt(self, replica: Replica, request: ChatRequest, total: float) -> None:
        """One try on one replica. Raises ``_Failure``."""
        breaker = replica.breaker(request.model)
        breaker.begin()
        replica.in_flight += 1
        fault = False
        try:
            await self._stream(replica, request, total)
        except _Failure as exc:
            fault = exc.counts
            raise
        finally:
            replica.in_flight -= 1
            if fault:
                breaker.failed()
            elif not request.streaming:
                breaker.released()  # a probe that ended neither way (cancelled, refused): another may go

    async def _stream(self, replica: Replica, request: ChatRequest, total: float) -> None:
        s = self.settings
        body: dict[str, object] = {
            "model": request.model,
            "messages": request.messages,
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": request.max_tokens,
            "temperature": request.sampling.temperature,
            "top_p": request.sampling.top_p,
            "seed": request.sampling.seed,
        }
        if request.stops:
            body["stop"] = request.stops
        if request.sampling.grammar:
            body["grammar"] = request.sampling.grammar  # GBNF: llama-server and llama-cpp-python's server constrain with it
        sent = time.monotonic()
        first = 0.0
        figures: dict[str, float | int] = {}  # the engine's own usage and timings, when it sends them
        finish = ""
        done = False
        deadline = asyncio.timeout_at(self._loop_time(min(sent + s.first_token_timeout, total)))
        text = TextBatcher(request.sink)
        try:
            async with deadline, replica.client.post(f"{replica.base}/chat/completions", json=body) as response:
                if response.status != 200:
                    raise _status_failure(response, self.name, replica.url, request.model)
                request.sink(Admitted(cached_tokens=0))
                async with contextlib.aclosing(sse.lines(response.content.iter_any())) as lines:
                    async for line in lines:
                        chunk = sse.parse(line)
                        if chunk is None:
                            continue
                        if chunk.done:
                            done = True
                            break
                        if chunk.error:
                            raise _Failure(f"engine {self.name} sent an error: {chunk.error}", retry=True, counts=True)
                        for key in ("prompt_tokens", "completion_tokens", "cached_tokens", "prompt_ms", "generation_ms"):
                            value = getattr(chunk, key)
                            if value is not None:
                                figures[key] = value
                        finish = chunk.finish_reason or finish
                        if chunk.text:
                            if not request.streaming:
                                first = time.monotonic()
                                request.streaming, request.replica = True, replica.url
                                replica.first_token_after(first - sent)
                                replica.breaker(request.model).succeeded()
                                request.sink(Generating())
                            request.tokens += 1
                            text.add(chunk.text, 1)
                        if request.streaming:
                            deadline.reschedule(self._loop_time(min(time.monotonic() + s.idle_timeout, total)))
        except aiohttp.ServerTimeoutError:  # the connect timeout: a TimeoutError too, so caught first
            raise _Failure(
                f"engine {self.name}: {replica.url} did not accept the connection in {s.connect_timeout:g} s", retry=True, counts=True
            ) from None
        except TimeoutError:
            now = time.monotonic()
            if now >= total:
                what = f"total_timeout ({s.total_timeout:g} s)"
            elif request.streaming:
                what = f"idle_timeout ({s.idle_timeout:g} s without a chunk)"
            else:
                what = f"first_token_timeout ({s.first_token_timeout:g} s)"
            raise _Failure(f"engine {self.name} ({replica.url}) passed its {what}", retry=True, counts=True) from None
        except aiohttp.ClientConnectorError as exc:  # refused, unreachable, or the TLS handshake failed
            replica.mark(False, f"cannot connect ({type(exc).__name__})")
            raise _Failure(f"engine {self.name}: cannot connect to {replica.url}", retry=True, counts=True) from None
        except aiohttp.ClientError as exc:
            replica.mark(False, f"the connection broke ({type(exc).__name__})")  # the next turn tries another first; a probe clears it
            raise _Failure(
                f"engine {self.name}: the connection to {replica.url} broke ({type(exc).__name__})", retry=True, counts=True
            ) from None
        except sse.Malformed as exc:
            raise _Failure(f"engine {self.name} sent malformed SSE ({exc})", retry=True, counts=True) from None
        finally:
            text.flush()  # what was held back reaches the sink before the end, whichever end it is
        if not (done or finish or request.tokens):
            raise _Failure(f"engine {self.name}: the stream from {replica.url} ended before any reply", retry=True, counts=True)
        if not done and not finish:
            raise _Failure(f"engine {self.name}: the stream from {replica.url} ended mid-reply", retry=False, counts=True)
        if not request.streaming:  # an empty reply: the request succeeded all the same
            request.replica = replica.url
            replica.breaker(request.model).succeeded()
        end = time.monotonic()
        request.sink(
            TurnResult(
                _FINISH.get(finish, Finish.END_OF_TURN),
                prompt_tokens=int(figures.get("prompt_tokens", 0)),
                completion_tokens=int(figures.get("completion_tokens", request.tokens)),
                cached_prompt_tokens=int(figures.get("cached_tokens", 0)),
                time_to_first_token_ms=(first - request.submitted_at) * 1000 if first else 0.0,
                prompt_ms=float(figures.get("prompt_ms", (first - sent) * 1000 if first else 0.0)),
                generation_ms=float(figures.get("generation_ms", (end - first) * 1000 if first else 0.0)),
            )
        )

    @staticmethod
    def _loop_time(monotonic: float) -> float:
        """A ``time.monotonic`` instant on the event loop's clock."""
        loop = asyncio.get_running_loop()
        return loop.time() + (monotonic - time.monotonic())

    async def close(self) -> None:
        if self._probing is not None:
            self._probing.cancel()
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*(r.close() for r in self.replicas), return_exceptions=True)
