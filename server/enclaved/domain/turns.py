"""Turns: one user message to one agent, from validation to the reply in its transcript.

A turn runs as an asyncio task. It waits for its agent's previous turn, builds the prompt
(tokenizing in a worker thread), submits it to the model's engine and republishes the engine's
events on the hub. The engine's scheduler thread hands events over with
``loop.call_soon_threadsafe``, so the event loop never blocks on llama.cpp.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace

from enclaved import engine as eng
from enclaved.audit.recorder import Recorder
from enclaved.audit.records import Entry
from enclaved.domain import keeping
from enclaved.domain.agents import Agent, AgentBook, Message
from enclaved.domain.engines import split_model
from enclaved.domain.hub import Delta, EventHub, Phase, PhaseChanged, Served, Started, Truncated, TurnEvent, TurnFailed
from enclaved.domain.models import ModelRegistry
from enclaved.domain.prompt import REPLY_RESERVE_FRACTION, Said, build_prompt
from enclaved.domain.remoteprompt import build_remote_prompt
from enclaved.domain.telemetry import Telemetry, result_figures
from enclaved.errors import EnclaveError, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied, ResourceExhausted, Unavailable

log = logging.getLogger("enclaved.turns")

DELETE_WAIT_SECONDS = 10.0  # for an agent's cancelled turns to end before it is deleted


@dataclass(frozen=True)
class TurnOptions:
    """What a team run asks of a turn beyond a plain chat turn."""

    run: str = ""  # the run's id: its events and audit records carry it
    step: int = 0
    grammar: str = ""  # GBNF the reply must match (a director's choice, a guard's verdict)
    max_tokens: int | None = None  # at most this many tokens (the run's budget left)
    fresh: bool = False  # the message alone, without the agent's history, and nothing kept (a guard's check)
    hold: bool = False  # no text reaches clients, the store or the history until ``release``


@dataclass
class Turn:
    id: str
    agent: Agent
    message: str
    detach: bool
    options: TurnOptions = TurnOptions()
    reply: str = ""  # once done: what it said
    result: eng.TurnResult | None = None  # once done: how it ended (None if it failed)
    error: EnclaveError | None = None  # once done: why it failed
    task: asyncio.Task[None] | None = None
    stop: Callable[[], None] | None = None  # cancels its request in the engine serving it
    served: Served | None = None  # set when a remote model or a fallback serves it
    dropped: int = 0  # oldest history messages its prompt left out to fit (kept with the reply)
    asked: asyncio.Future[None] | None = None  # the person's message being stored, as the turn starts
    cancelled: bool = False
    ended: bool = False  # its terminal event (TurnResult or TurnFailed) was published
    done: asyncio.Event = field(default_factory=asyncio.Event)  # its task has finished
    started: float = field(default_factory=time.monotonic)  # accepted; its whole time counts from here


SHUTTING_DOWN = "enclaved is shutting down; the turn was stopped, its reply so far is kept marked interrupted; send it again after restart"


class TurnManager:
    def __init__(
        self,
        agents: AgentBook,
        models: ModelRegistry,
        hub: EventHub,
        max_message_bytes: int,
        recorder: Recorder,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.agents = agents
        self.telemetry = telemetry or Telemetry()  # every finished turn's figures (metrics, status)
        self.models = models
        self.hub = hub
        self.recorder = recorder
        self.max_message_bytes = max_message_bytes
        self._turns: dict[str, Turn] = {}
        self._closing = False

    # ---- starting ---------------------------------------------------------------------------

    def check_message(self, message: str) -> None:
        if not message.strip():
            raise InvalidArgument("message is empty; type something to send")
        size = len(message.encode("utf-8"))
        if size > self.max_message_bytes:
            raise InvalidArgument(
                f"message is {size} bytes, over the {self.max_message_bytes}-byte limit; shorten it "
                "or raise max_message_bytes in the config"
            )

    def prepare(self, agent_name: str, message: str, detach: bool, options: TurnOptions = TurnOptions()) -> Turn:
        """Validate and create a turn without starting it, so callers can subscribe first.
        A team run's turns (``options.run``) carry what others said: the run checked the
        person's message, and their size is the run's limits' to bound."""
        if self._closing:
            raise Unavailable("enclaved is shutting down; try again once it is back")
        if not options.run:
            self.check_message(message)
        agent = self.agents.get(agent_name)
        if agent.deleting:
            raise FailedPrecondition(f"agent {agent.name!r} is being deleted")
        return Turn(id=uuid.uuid4().hex[:12], agent=agent, message=message, detach=detach, options=options)

    async def launch(self, turn: Turn) -> None:
        """Record the request, then start the turn: nothing runs that the audit log lacks, and
        every recorded request gets an outcome. A caller cancelled meanwhile (a deadline, a
        client gone) does not cut the two apart: the turn starts and, unless detached, is
        cancelled at once, which records chat.cancel."""
        started = asyncio.ensure_future(self._launch(turn))
        try:
            await asyncio.shield(started)
        except asyncio.CancelledError:
            started.add_done_callback(lambda t: self._launched_without_caller(t, turn))
            raise

    def _launched_without_caller(self, launch: asyncio.Future[None], turn: Turn) -> None:
        if launch.cancelled() or launch.exception() is not None:
            return  # nothing was recorded, or the failure was: no turn runs
        if not turn.detach:
            self.cancel(turn)

    async def _launch(self, turn: Turn) -> None:
        agent, run = turn.agent, keeping.run_payload(turn.options.run, turn.options.step)
        await self.recorder.record(
            Entry("chat.request", agent=agent.name, model=agent.model, turn=turn.id, payload=run or None, text={"prompt": turn.message})
        )
        self._turns[turn.id] = turn
        turn.agent.in_flight += 1
        self._publish(turn, Started(turn.agent.model, turn.message, held=turn.options.hold))
        turn.task = asyncio.create_task(self._run(turn), name=f"turn-{turn.id}")

    # ---- cancelling -------------------------------------------------------------------------

    def cancel(self, turn: Turn) -> None:
        if turn.done.is_set() or turn.cancelled:
            return
        turn.cancelled = True
        if turn.stop is not None:
            turn.stop()  # the engine reports CANCELLED at its next step
        elif turn.task is not None:
            turn.task.cancel()  # still waiting for the agent or the model

    def cancel_where(self, *, turn_id: str | None = None, agent: str | None = None) -> list[str]:
        """Cancel by turn id, by agent, or (neither given) every turn; returns their ids."""
        if agent is not None:
            self.agents.get(agent)
        chosen = [t for t in self._turns.values() if (turn_id is None or t.id == turn_id) and (agent is None or t.agent.name == agent)]
        for t in chosen:
            self.cancel(t)
        return [t.id for t in chosen]

    async def delete_agent(self, name: str) -> None:
        """Stop the agent's turns and wait for them to end, then delete it: no message of a
        turn that was running can reach the store after the delete (a new agent of the same
        name would inherit it)."""
        agent = self.agents.get(name)
        agent.deleting = True
        try:
            running = [t for t in self._turns.values() if t.agent is agent]
            for t in running:
                self.cancel(t)
            if running:
                await asyncio.wait([asyncio.create_task(t.done.wait()) for t in running], timeout=DELETE_WAIT_SECONDS)
            if agent.in_flight:
                raise FailedPrecondition(f"agent {name!r} has a turn that did not stop in time; try the delete again")
            await self.agents.delete(name)
        finally:
            agent.deleting = False

    @property
    def active(self) -> int:
        return len(self._turns)

    async def shutdown(self) -> None:
        """End every turn with UNAVAILABLE, its reply so far kept marked interrupted; used on
        SIGTERM. A turn that does not stop in time fails without its text."""
        self._closing = True
        turns = list(self._turns.values())
        for t in turns:
            self.cancel(t)
        if turns:
            await asyncio.wait([asyncio.create_task(t.done.wait()) for t in turns], timeout=10)
        for t in turns:
            await self._fail(t, Unavailable(SHUTTING_DOWN), finish="interrupted")

    # ---- running ----------------------------------------------------------------------------

    async def _run(self, turn: Turn) -> None:
        agent = turn.agent
        try:
            async with agent.turn_lock:
                await self._run_locked(turn)
        except asyncio.CancelledError:  # while it waited for the agent: nothing was stored
            await self._end(turn, "", eng.TurnResult(eng.Finish.CANCELLED))
        finally:
            agent.in_flight -= 1
            self._turns.pop(turn.id, None)
            turn.done.set()

    async def _run_locked(self, turn: Turn) -> None:
        """The turn, holding its agent until it has ended (its rows stored, see keeping)."""
        try:
            if turn.cancelled:
                raise asyncio.CancelledError
            if not (turn.options.fresh or turn.options.hold or turn.agent.deleting):  # see keeping
                turn.asked = keeping.store_message(self.recorder.conversations, turn.agent, turn.message, turn.id)
            await self._generate(turn)
        except asyncio.CancelledError:
            await self._end(turn, "", eng.TurnResult(eng.Finish.CANCELLED))
        except EnclaveError as exc:
            await self._fail(turn, exc)
        except Exception:
            log.exception("turn %s failed", turn.id)
            await self._fail(turn, EnclaveError(f"internal error in turn {turn.id}; see the daemon log"))

    async def _generate(self, turn: Turn) -> None:
        """The agent's model serves the turn; when it cannot before its first token (missing,
        failing to load, its engine unreachable or its circuit open, the request failing), the
        next of its fallbacks does, and the stream says which and why."""
        chain = [turn.agent.model, *turn.agent.fallbacks]
        tried: list[str] = []
        for name in chain:
            if turn.cancelled:
                raise asyncio.CancelledError
            try:
                await self._serve(turn, name, "; ".join(tried))
                return
            except _Unserved as exc:
                if len(chain) == 1:
                    raise exc.error from None
                log.warning("turn %s of agent %s: %s could not serve it: %s", turn.id, turn.agent.name, name, exc.error.message)
                tried.append(f"{name}: {exc.error.message}")
        raise Unavailable(f"no model could serve the turn; tried {' | '.join(tried)}")

    async def _serve(self, turn: Turn, name: str, reason: str) -> None:
        """Generate with one model; ``_Unserved`` when it fails before its first token."""
        if split_model(name)[1]:
            await self._generate_remote(turn, name, reason)
            return
        async with AsyncExitStack() as stack:
            try:
                engine = await stack.enter_async_context(self.models.using(name))
            except (NotFound, FailedPrecondition, ResourceExhausted, InvalidArgument) as exc:
                raise _Unserved(exc) from None
            if reason:
                turn.served = Served(name, reason=reason)
                self._publish(turn, turn.served)
            await self._generate_on(turn, engine)

    async def _generate_on(self, turn: Turn, engine: eng.Engine) -> None:
        agent, options = turn.agent, turn.options
        history = [] if options.fresh else [Said(m.role, m.content, m.tokens) for m in agent.said()]
        n_ctx = engine.n_ctx_seq
        reserve = min(agent.params.reply_limit, n_ctx // REPLY_RESERVE_FRACTION)
        tokenizing = asyncio.ensure_future(
            asyncio.to_thread(build_prompt, engine.model, agent.system, history, turn.message, n_ctx, reserve)
        )
        try:
            prompt = await asyncio.shield(tokenizing)
        except asyncio.CancelledError:
            await asyncio.wait([tokenizing])  # the model must outlive the thread that reads it
            raise
        turn.dropped = prompt.dropped_messages
        if prompt.dropped_messages:
            self._publish(turn, Truncated(prompt.dropped_messages, len(prompt.tokens)))

        loop = asyncio.get_running_loop()
        events: asyncio.Queue[eng.EngineEvent] = asyncio.Queue()
        limit = agent.params.reply_limit if options.max_tokens is None else min(agent.params.reply_limit, options.max_tokens)
        request = eng.Request(
            prompt=prompt.tokens,
            sampling=replace(agent.params.sampling(), grammar=options.grammar),
            max_tokens=max(limit, 1),
            stops=list(agent.params.stop),
            sink=lambda ev: loop.call_soon_threadsafe(events.put_nowait, ev),
            owner=agent.name,
        )
        try:
            engine.submit(request)
        except RuntimeError:
            raise Unavailable(f"model {agent.model!r} is not taking work (its engine stopped); unload and load it again") from None
        except ValueError as exc:  # a grammar llama.cpp cannot parse
            raise InvalidArgument(str(exc)) from None
        turn.stop = lambda: engine.cancel(request)
        if turn.cancelled:
            engine.cancel(request)

        reply: list[str] = []
        while True:
            ev = await events.get()
            if isinstance(ev, eng.Admitted):
                self._publish(turn, PhaseChanged(Phase.PREFILL))
            elif isinstance(ev, eng.Generating):
                self._publish(turn, PhaseChanged(Phase.GENERATING, len(prompt.tokens)))
            elif isinstance(ev, eng.Text):
                reply.append(ev.text)
                if not options.hold:
                    self._publish(turn, Delta(ev.text, ev.tokens))
            elif isinstance(ev, eng.Failed):
                raise FailedPrecondition(ev.message)
            elif isinstance(ev, eng.TurnResult):
                await self._end(turn, "".join(reply), ev)
                return

    async def _generate_remote(self, turn: Turn, name: str, reason: str) -> None:
        """The conversation as chat messages to ``model@engine`` (the engine applies its own
        template), its oldest exchanges left out when it outgrows the model's context. A
        director's choice or a guard's verdict goes with its grammar, which llama.cpp's servers
        apply; from an engine that ignores it, a malformed answer fails closed as ever."""
        agent, options = turn.agent, turn.options
        limit = agent.params.reply_limit if options.max_tokens is None else min(agent.params.reply_limit, options.max_tokens)
        history = [] if options.fresh else [(m.role, m.content) for m in agent.said()]
        try:
            prompt = await build_remote_prompt(self.models.remote, name, agent.system, history, turn.message, limit)
        except NotFound as exc:
            raise _Unserved(exc) from None
        turn.dropped = prompt.dropped_messages
        if prompt.dropped_messages:
            self._publish(turn, Truncated(prompt.dropped_messages, prompt.tokens))
        events: asyncio.Queue[eng.EngineEvent] = asyncio.Queue()
        try:
            engine, request = self.models.remote.submit(
                name,
                prompt.messages,
                replace(agent.params.sampling(), grammar=options.grammar),
                min(limit, prompt.room or limit),
                list(agent.params.stop),
                events.put_nowait,
            )
        except (NotFound, Unavailable) as exc:
            raise _Unserved(exc) from None
        turn.stop = lambda: engine.cancel(request)
        if turn.cancelled:
            engine.cancel(request)
        reply: list[str] = []
        while True:
            ev = await events.get()
            if isinstance(ev, eng.Admitted):
                self._publish(turn, PhaseChanged(Phase.PREFILL))
            elif isinstance(ev, eng.Generating):
                turn.served = Served(name, engine.name, request.replica, reason)
                self._publish(turn, turn.served)
                self._publish(turn, PhaseChanged(Phase.GENERATING, prompt.tokens))
            elif isinstance(ev, eng.Text):
                reply.append(ev.text)
                if not turn.options.hold:  # a guard holds the reply until it allows it
                    self._publish(turn, Delta(ev.text, ev.tokens))
            elif isinstance(ev, eng.Failed) and not ev.started:
                turn.stop = None
                raise _Unserved(Unavailable(ev.message))
            elif isinstance(ev, eng.Failed):
                broken = Unavailable(f"{ev.message}; the reply broke off, its partial text is kept marked interrupted; send it again")
                await self._end(turn, "".join(reply), eng.TurnResult(eng.Finish.CANCELLED, completion_tokens=request.tokens), broken)
                return
            elif isinstance(ev, eng.TurnResult):
                await self._end(turn, "".join(reply), ev)
                return

    async def _end(self, turn: Turn, reply: str, result: eng.TurnResult, broken: EnclaveError | None = None) -> None:
        """Audit the outcome and keep the exchange, then tell the clients; in that order, so
        a client never sees a reply the audit log and the store do not hold. ``broken``: the
        stream failed after its first token; the partial reply is kept as "interrupted"."""
        if turn.ended:
            return
        turn.reply, turn.result = reply, result
        if turn.options.hold and broken is not None:  # nothing a guard has not seen is kept
            turn.options = replace(turn.options, hold=False)
            await self._fail(turn, broken)
            return
        if turn.options.hold:
            return  # ``release`` ends it, once the guard has spoken
        await self._keep(turn, reply, result, broken)

    async def release(self, turn: Turn, allowed: bool, reason: str = "") -> None:
        """End a held turn: allowed, its reply reaches the clients, the store and the history
        as any reply does; blocked, it ends with ``reason`` and its text goes nowhere."""
        if turn.ended or not turn.options.hold:
            return
        turn.options = replace(turn.options, hold=False)
        result = turn.result or eng.TurnResult(eng.Finish.CANCELLED)
        if allowed:
            if turn.reply or result.completion_tokens:
                self._publish(turn, Delta(turn.reply, result.completion_tokens))
            await self._keep(turn, turn.reply, result)
        else:
            await self._fail(turn, PermissionDenied(reason or "the team's guard did not allow this reply"), keep_reply=True)

    async def _keep(self, turn: Turn, reply: str, result: eng.TurnResult, broken: EnclaveError | None = None) -> None:
        agent = turn.agent
        if broken is None and self._closing and result.finish is eng.Finish.CANCELLED:
            broken = Unavailable(SHUTTING_DOWN)  # stopped by the shutdown, not by a person
        cancelled = result.finish is eng.Finish.CANCELLED and broken is None
        said = bool(reply or result.completion_tokens)  # if not, kept only when its message was stored
        # the generated tokens are the reply exactly unless a stop string cut it (or the reply
        # broke off on a remote engine): the next turn's prompt reuses them, and the KV cells
        # that hold them, as they are
        whole = broken is None and result.finish is not eng.Finish.STOP_STRING
        finish = "interrupted" if broken else result.finish.value
        answer = Message("assistant", reply, turn.id, finish, turn.dropped, tokens=result.tokens if whole else ())
        asked = await keeping.message_stored(turn)
        # a message stored as its turn started gets its reply row, even an empty one
        kept = (said or asked) and not agent.deleting and not turn.options.fresh
        exchange = [Message("user", turn.message, turn.id), answer] if kept else []
        rows = exchange[1:] if asked else exchange
        context_tokens = result.prompt_tokens + result.completion_tokens
        await asyncio.gather(
            *keeping.save(self.recorder.conversations, agent, rows, context_tokens),
            self.recorder.record(
                Entry(
                    "chat.error" if broken else "chat.cancel" if cancelled else "chat.completion",
                    agent=agent.name,
                    model=turn.served.model if turn.served else agent.model,
                    turn=turn.id,
                    outcome="error" if broken else "cancelled" if cancelled else "ok",
                    payload={
                        **keeping.served_payload(turn.served),
                        **keeping.run_payload(turn.options.run, turn.options.step),
                        **({"code": broken.code, "message": broken.message, "partial": said} if broken else {}),
                        "finish_reason": finish,
                        **result_figures(result),
                    },
                    text={"completion": reply},
                )
            ),
        )
        agent.stored += len(rows)
        if kept:
            agent.history.extend(exchange)
            agent.context_tokens = context_tokens
        self.telemetry.finished(turn.served.model if turn.served else agent.model, result, time.monotonic() - turn.started)
        self._publish(turn, TurnFailed(broken.code, broken.message) if broken else result)

    def _publish(self, turn: Turn, body: object) -> None:
        if turn.ended:
            return
        event = TurnEvent(turn.agent.name, turn.id, body, turn.options.run, turn.options.step)  # type: ignore[arg-type]
        turn.ended = event.terminal
        self.hub.publish(event)

    async def _fail(self, turn: Turn, exc: EnclaveError, *, keep_reply: bool = False, finish: str = "error") -> None:
        """End the turn with ``exc``. A message stored as the turn started gets an empty reply
        row marked ``finish`` (``error``; ``interrupted`` when the daemon stops)."""
        if turn.ended:
            return
        agent = turn.agent
        if not keep_reply:
            turn.error = exc
        log.info("turn %s of agent %s failed: %s", turn.id, agent.name, exc.code)
        exchange: list[Message] = []
        with contextlib.suppress(EnclaveError):  # a message that could not be stored has nothing to pair
            if await keeping.message_stored(turn) and not agent.deleting:
                exchange = [Message("user", turn.message, turn.id), Message("assistant", "", turn.id, finish)]
        try:
            await asyncio.gather(
                self.recorder.record(
                    Entry(
                        "chat.error",
                        agent=agent.name,
                        model=turn.served.model if turn.served else agent.model,
                        turn=turn.id,
                        outcome="error",
                        payload={
                            **keeping.served_payload(turn.served),
                            **keeping.run_payload(turn.options.run, turn.options.step),
                            "code": exc.code,
                            "message": exc.message,
                        },
                        text={"completion": turn.reply} if keep_reply else None,
                    )
                ),
                *keeping.save(self.recorder.conversations, agent, exchange[1:]),
            )
        except EnclaveError as audit_exc:  # the turn fails either way; say why it is not recorded
            exc = audit_exc
        else:
            agent.stored += len(exchange[1:])
            agent.history.extend(exchange)
        self._publish(turn, TurnFailed(exc.code, exc.message))


class _Unserved(Exception):
    """A model could not serve the turn before its first token: the next fallback may."""

    def __init__(self, error: EnclaveError) -> None:
        super().__init__(error.message)
        self.error = error
