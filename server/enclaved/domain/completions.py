"""Stateless completions: a whole conversation (or a raw prompt) in, one reply out, kept
nowhere but the audit log. This is what the OpenAI-compatible HTTP API serves.

A run is submitted to the same engine as agents' turns, so it joins the same batches. Like a
turn it is an asyncio task of its own that records ``chat.request`` before it starts and
exactly one outcome (``chat.completion``, ``chat.cancel`` or ``chat.error``) before its caller
sees the end; its caller reads its events from a queue and cancels it when it goes away.

``agent:NAME`` borrows an agent's model, system prompt and sampling settings; the agent's
conversation is neither read nor changed. A system message in the request comes after the
agent's system prompt, in the same system message (the agent's prompt is the operator's).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from enclaved import engine as eng
from enclaved.audit.recorder import Recorder
from enclaved.audit.records import Entry
from enclaved.domain.agents import AgentBook, AgentParams
from enclaved.domain.models import ModelRegistry
from enclaved.domain.prompt import Said, tokenize
from enclaved.domain.telemetry import Telemetry, result_figures
from enclaved.errors import EnclaveError, FailedPrecondition, InvalidArgument, NotFound, Unavailable

log = logging.getLogger("enclaved.completions")

AGENT_PREFIX = "agent:"
SHUTDOWN_WAIT_SECONDS = 10.0


class ContextLengthExceeded(InvalidArgument):
    """The prompt alone fills the model's context."""


@dataclass(frozen=True)
class Target:
    """What a request's ``model`` names: a model, or an agent's model and settings."""

    model: str
    agent: str | None = None
    system: str = ""
    params: AgentParams = field(default_factory=AgentParams)


@dataclass(frozen=True)
class Job:
    target: Target
    sampling: eng.SamplingSettings
    max_tokens: int | None  # None: until the context is full
    stops: tuple[str, ...]
    conversation: tuple[Said, ...] = ()  # a chat (roles system, user, assistant)
    prompt: str | None = None  # or a raw prompt


Event = eng.Text | eng.TurnResult | EnclaveError  # the last one a TurnResult or an error


@dataclass
class Run:
    id: str
    job: Job
    events: asyncio.Queue[Event] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None
    stop: Callable[[], None] | None = None  # cancels its request in the engine serving it
    cancelled: bool = False
    ended: bool = False
    started: float = field(default_factory=time.monotonic)

    def cancel(self) -> None:
        """Stop it (its caller went away); the outcome is still recorded."""
        if self.ended or self.cancelled:
            return
        self.cancelled = True
        if self.stop is not None:
            self.stop()  # the engine frees its cells (or closes the stream) at its next step
        elif self.task is not None:
            self.task.cancel()

    def _end(self, event: Event) -> None:
        if not self.ended:
            self.ended = True
            self.events.put_nowait(event)


class Completions:
    def __init__(self, models: ModelRegistry, agents: AgentBook, recorder: Recorder, telemetry: Telemetry) -> None:
        self.models = models
        self.agents = agents
        self.recorder = recorder
        self.telemetry = telemetry
        self._runs: dict[str, Run] = {}
        self._closing = False

    def target(self, name: str) -> Target:
        """``agent:NAME`` or a model's name; NotFound for anything else."""
        if name.startswith(AGENT_PREFIX):
            agent = self.agents.get(name[len(AGENT_PREFIX) :])
            return Target(agent.model, agent.name, agent.system, agent.params)
        if "@" in name:  # model@engine: a remote model, served by its engine
            if name not in {v.name for v in self.models.remote.views()}:
                raise NotFound("no model by that name; GET /v1/models lists them")
            return Target(name)
        try:
            return Target(self.models.file(name).name)
        except InvalidArgument:
            raise NotFound("no model by that name; GET /v1/models lists them") from None

    async def start(self, job: Job) -> Run:
        """Record the request and start it; read ``run.events`` until a TurnResult or an error."""
        if self._closing:
            raise Unavailable("enclaved is shutting down; try again once it is back")
        run = Run(uuid.uuid4().hex[:12], job)
        # A caller cancelled meanwhile (the client went away) does not cut the record from
        # the run: the run starts and is cancelled at once, which records chat.cancel.
        launch = asyncio.ensure_future(self._launch(run))
        try:
            await asyncio.shield(launch)
        except asyncio.CancelledError:
            launch.add_done_callback(lambda f: _cancel_if_launched(f, run))
            raise
        return run

    async def _launch(self, run: Run) -> None:
        job, t = run.job, run.job.target
        text = job.prompt if job.prompt is not None else json.dumps([{"role": s.role, "content": s.content} for s in job.conversation])
        payload = {"via": "http", "stateless": True}
        await self.recorder.record(Entry("chat.request", agent=t.agent, model=t.model, turn=run.id, payload=payload, text={"prompt": text}))
        self._runs[run.id] = run
        run.task = asyncio.create_task(self._run(run), name=f"completion-{run.id}")

    async def shutdown(self) -> None:
        """End every run with UNAVAILABLE; used on SIGTERM."""
        self._closing = True
        runs = list(self._runs.values())
        for run in runs:
            await self._fail(run, Unavailable("enclaved is shutting down; the request was stopped, send it again after restart"))
            run.cancel()
        tasks = [r.task for r in runs if r.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=SHUTDOWN_WAIT_SECONDS)

    # ---- running ----------------------------------------------------------------------------

    async def _run(self, run: Run) -> None:
        try:
            if "@" in run.job.target.model:
                await self._generate_remote(run)
            else:
                async with self.models.using(run.job.target.model) as engine:
                    await self._generate(run, engine)
        except asyncio.CancelledError:
            await self._finish(run, "", eng.TurnResult(eng.Finish.CANCELLED))
        except EnclaveError as exc:
            await self._fail(run, exc)
        except Exception:
            log.exception("completion %s failed", run.id)
            await self._fail(run, EnclaveError(f"internal error in request {run.id}; see the daemon log"))
        finally:
            self._runs.pop(run.id, None)

    async def _generate(self, run: Run, engine: eng.Engine) -> None:
        job = run.job
        tokenizing = asyncio.ensure_future(asyncio.to_thread(self._tokenize, engine, job))
        try:
            prompt = await asyncio.shield(tokenizing)
        except asyncio.CancelledError:
            await asyncio.wait([tokenizing])  # the model must outlive the thread that reads it
            raise
        n_ctx = engine.n_ctx_seq
        if len(prompt) >= n_ctx:
            raise ContextLengthExceeded(
                f"the prompt takes {len(prompt)} tokens but the model's context holds {n_ctx}; "
                "shorten the messages or raise n_ctx for this model"
            )
        room = n_ctx - len(prompt)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[eng.EngineEvent] = asyncio.Queue()
        request = eng.Request(
            prompt=prompt,
            sampling=job.sampling,
            max_tokens=min(job.max_tokens or room, room),
            stops=list(job.stops),
            sink=lambda ev: loop.call_soon_threadsafe(queue.put_nowait, ev),
        )
        try:
            engine.submit(request)
        except RuntimeError:
            raise Unavailable(f"model {job.target.model!r} is not taking work (its engine stopped); unload and load it again") from None
        run.stop = lambda: engine.cancel(request)
        if run.cancelled:
            engine.cancel(request)
        await self._relay(run, queue, FailedPrecondition)

    async def _generate_remote(self, run: Run) -> None:
        """The conversation as chat messages to ``model@engine``, which applies its own template
        and counts its own context; no fallback (the request named the model)."""
        job = run.job
        if job.prompt is not None:
            raise InvalidArgument("/v1/completions serves local models; send a model@engine to /v1/chat/completions")
        messages = [{"role": s.role, "content": s.content} for s in _with_system(job.target.system, list(job.conversation))]
        queue: asyncio.Queue[eng.EngineEvent] = asyncio.Queue()
        limit = job.max_tokens or job.target.params.reply_limit
        engine, request = self.models.remote.submit(job.target.model, messages, job.sampling, limit, list(job.stops), queue.put_nowait)
        run.stop = lambda: engine.cancel(request)
        if run.cancelled:
            engine.cancel(request)
        await self._relay(run, queue, Unavailable)

    async def _relay(self, run: Run, queue: asyncio.Queue[eng.EngineEvent], failed: type[EnclaveError]) -> None:
        """Pass the engine's text to the caller until the run ends; an engine failure becomes
        ``failed`` (a local engine's is the request's fault, a remote one's the engine's)."""
        reply: list[str] = []
        while True:
            ev = await queue.get()
            if isinstance(ev, eng.Text):
                reply.append(ev.text)
                if not run.ended:
                    run.events.put_nowait(ev)
            elif isinstance(ev, eng.Failed):
                raise failed(ev.message)
            elif isinstance(ev, eng.TurnResult):
                await self._finish(run, "".join(reply), ev)
                return

    @staticmethod
    def _tokenize(engine: eng.Engine, job: Job) -> list[int]:
        if job.prompt is not None:
            return engine.model.tokenize(job.prompt, add_special=True, parse_special=False)
        return tokenize(engine.model, _with_system(job.target.system, list(job.conversation)))

    async def _finish(self, run: Run, reply: str, result: eng.TurnResult) -> None:
        if run.ended:
            return
        cancelled = result.finish is eng.Finish.CANCELLED
        t = run.job.target
        await self.recorder.record(
            Entry(
                "chat.cancel" if cancelled else "chat.completion",
                agent=t.agent,
                model=t.model,
                turn=run.id,
                outcome="cancelled" if cancelled else "ok",
                payload={
                    "via": "http",
                    "finish_reason": result.finish.value,
                    **result_figures(result),
                },
                text={"completion": reply},
            )
        )
        self.telemetry.finished(t.model, result, time.monotonic() - run.started)
        run._end(result)

    async def _fail(self, run: Run, exc: EnclaveError) -> None:
        if run.ended:
            return
        t = run.job.target
        log.info("request %s failed: %s", run.id, exc.code)
        try:
            payload = {"via": "http", "code": exc.code, "message": exc.message}
            await self.recorder.record(Entry("chat.error", agent=t.agent, model=t.model, turn=run.id, outcome="error", payload=payload))
        except EnclaveError as audit_exc:  # it fails either way; say why it is not recorded
            exc = audit_exc
        run._end(exc)


def _with_system(system: str, conversation: list[Said]) -> list[Said]:
    """The agent's system prompt first, the request's own after it, as one system message."""
    if not system:
        return conversation
    own = [s.content for s in conversation if s.role == "system"]
    return [Said("system", "\n\n".join([system, *own]))] + [s for s in conversation if s.role != "system"]


def _cancel_if_launched(launch: asyncio.Future[None], run: Run) -> None:
    if not launch.cancelled() and launch.exception() is None:
        run.cancel()
