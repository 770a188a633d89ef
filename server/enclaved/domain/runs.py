"""Team runs: one message worked on by a team's agents, turn by turn, within its limits.

A run is an asyncio task. Each of its turns is an ordinary turn of the ``TurnManager``
(tagged with the run's id and step), so it is queued, batched, streamed, audited and kept in
the agent's transcript as any turn is; what the kinds add (``domain/teamkinds.py``) is who
speaks next and what each is told. Other agents' words reach an agent as its user message
("critic: …"), never as its own replies, and each agent's next turn appends to its own
conversation, so its KV sequence is reused. Limits (member turns, generated tokens, wall
time) are checked around every turn; a guard that fails blocks.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from enclaved.audit.recorder import Recorder
from enclaved.audit.records import Entry
from enclaved.domain.agents import Agent, AgentBook
from enclaved.domain.hub import Body, EventHub, GuardChecked, RunEnded, RunStarted, TurnEvent
from enclaved.domain.teams import Team, TeamBook
from enclaved.domain.turns import Turn, TurnManager, TurnOptions
from enclaved.engine import Finish
from enclaved.errors import EnclaveError, FailedPrecondition, NotFound, ResourceExhausted, Unavailable

log = logging.getLogger("enclaved.runs")

VERDICT_GRAMMAR = 'root ::= ("allow" | "block") ": " [^\\n]*'
MAX_RUNS = 64  # runs in progress or queued, all teams together


class RunEnd(enum.Enum):
    DONE = "done"
    STOP_TEXT = "stop_text"
    MAX_TURNS = "max_turns"
    MAX_TOKENS = "max_tokens"
    TIMEOUT = "timeout"
    BLOCKED = "blocked"
    CANCELLED = "cancelled"
    ERROR = "error"


_OUTCOME = {RunEnd.CANCELLED: "cancelled", RunEnd.BLOCKED: "denied", RunEnd.ERROR: "error", RunEnd.TIMEOUT: "error"}


class Ended(Exception):
    """Raised inside a run to end it with ``reason`` and a one-line ``message`` (no user text)."""

    def __init__(self, reason: RunEnd, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


@dataclass
class Run:
    id: str
    team: Team
    message: str
    detach: bool
    adhoc: bool = False
    agents: dict[str, Agent] = field(default_factory=dict)  # the team's agents as the run began
    settings: dict[str, tuple[object, ...]] = field(default_factory=dict)
    step: int = 0
    turns: int = 0  # member turns
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    said: list[tuple[str, str]] = field(default_factory=list)  # (who, text): the person ("") first
    seen: dict[str, int] = field(default_factory=dict)  # per agent: how much of ``said`` it was told
    answer_agent: str = ""
    answer: str = ""
    started_at: float = 0.0
    held: list[Turn] = field(default_factory=list)  # replies the guard has not allowed yet
    task: asyncio.Task[None] | None = None
    cancelled: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def news_for(self, name: str) -> str:
        """What was said since ``name`` last spoke: the person's message as it is, the others'
        replies as "who: text"; its own replies are in its conversation already."""
        lines = [text if not who else f"{who}: {text}" for who, text in self.said[self.seen.get(name, 0) :] if who != name]
        self.seen[name] = len(self.said)
        return "\n\n".join(lines) or "(nothing new was said; go on)"  # the guard skipped what was

    def instructed(self, name: str, text: str) -> str:
        instruction = self.team.instructions.get(name, "")
        return f"{instruction}\n\n{text}" if instruction else text


def _settings(agent: Agent) -> tuple[object, ...]:
    return (agent.model, agent.system, agent.params)


class RunManager:
    def __init__(self, teams: TeamBook, agents: AgentBook, turns: TurnManager, hub: EventHub, recorder: Recorder) -> None:
        self.teams = teams
        self.agents = agents
        self.turns = turns
        self.hub = hub
        self.recorder = recorder
        self._runs: dict[str, Run] = {}
        self._locks: dict[str, asyncio.Lock] = {}  # runs of one team queue
        self._closing = False

    # ---- starting ---------------------------------------------------------------------------

    def prepare(self, team: Team | str, message: str, detach: bool) -> Run:
        """Validate a run without starting it (callers subscribe first): the team and every
        agent it names as they are now, and the message."""
        if self._closing:
            raise Unavailable("enclaved is shutting down; try again once it is back")
        adhoc = isinstance(team, Team)
        team = team if isinstance(team, Team) else self.teams.get(team)
        self.teams.check(team)  # an agent deleted since the team was put is named here
        self.turns.check_message(message)
        if len(self._runs) >= MAX_RUNS:
            raise ResourceExhausted(f"{MAX_RUNS} team runs are in progress or queued, the most enclaved takes; wait or cancel one")
        run = Run(id="run-" + uuid.uuid4().hex[:10], team=team, message=message, detach=detach, adhoc=adhoc)
        for name in team.agents:
            agent = self.agents.get(name)
            if agent.deleting:
                raise FailedPrecondition(f"agent {name!r} of team {team.name!r} is being deleted")
            run.agents[name], run.settings[name] = agent, _settings(agent)
        run.said.append(("", message))
        return run

    async def launch(self, run: Run) -> None:
        """Record the run, then start it: nothing runs that the audit log lacks, and every
        recorded run gets its team.end. A caller cancelled meanwhile does not cut the two
        apart: the run starts and, unless detached, is cancelled at once."""
        started = asyncio.ensure_future(self._launch(run))
        try:
            await asyncio.shield(started)
        except asyncio.CancelledError:
            started.add_done_callback(lambda t: None if t.cancelled() or t.exception() or run.detach else self.cancel(run))
            raise

    async def _launch(self, run: Run) -> None:
        team = run.team
        payload = {
            "team": team.name,
            "kind": team.kind,
            "members": list(team.members),
            "settings_digest": team.digest(),
            "adhoc": run.adhoc,
        }
        await self.recorder.record(Entry("team.run", turn=run.id, payload=payload, text={"prompt": run.message}))
        self._runs[run.id] = run
        body = RunStarted(team.name, team.kind, team.members, team.max_turns, team.max_tokens, team.timeout, run.message)
        self.publish(run, "", body)
        run.task = asyncio.create_task(self._run(run), name=f"run-{run.id}")

    def publish(self, run: Run, agent: str, body: Body) -> None:
        self.hub.publish(TurnEvent(agent, "", body, run.id, run.step))

    # ---- cancelling -------------------------------------------------------------------------

    def get(self, run_id: str) -> Run:
        run = self._runs.get(run_id)
        if run is None:
            raise NotFound(f"no team run {run_id!r} in progress; it may have finished already")
        return run

    def cancel(self, run: Run) -> None:
        if run.done.is_set() or run.cancelled:
            return
        run.cancelled = True
        if run.task is not None:
            run.task.cancel()

    def busy(self, team: str) -> bool:
        return any(r.team.name == team and not r.adhoc for r in self._runs.values())

    async def shutdown(self) -> None:
        self._closing = True
        runs = list(self._runs.values())
        for run in runs:
            self.cancel(run)
        if runs:
            await asyncio.wait([asyncio.create_task(r.done.wait()) for r in runs], timeout=10)

    # ---- running ----------------------------------------------------------------------------

    async def _run(self, run: Run) -> None:
        key = run.id if run.adhoc else run.team.name
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            await lock.acquire()
        except asyncio.CancelledError:
            await self._finish(run, RunEnd.CANCELLED, "the run was cancelled while it waited for the team")
            return
        reason, message = RunEnd.DONE, "the team finished"
        try:
            run.started_at = time.monotonic()  # a queued run's clock starts when it does
            if run.cancelled:
                raise asyncio.CancelledError
            async with asyncio.timeout(run.team.timeout):
                await self._work(run)
        except TimeoutError:
            reason, message = RunEnd.TIMEOUT, f"the run reached its {run.team.timeout:g}-second timeout"
        except Ended as end:
            reason, message = end.reason, end.message
        except asyncio.CancelledError:
            reason, message = RunEnd.CANCELLED, "the run was cancelled"
        except EnclaveError as exc:
            reason, message = RunEnd.ERROR, exc.message
        except Exception:
            log.exception("team run %s failed", run.id)
            reason, message = RunEnd.ERROR, f"internal error in team run {run.id}; see the daemon log"
        finally:
            try:
                await self._finish(run, reason, message)
            finally:
                lock.release()  # the next run of the team starts after this one's end
                if not any((r.id if r.adhoc else r.team.name) == key for r in self._runs.values()):
                    self._locks.pop(key, None)

    async def _work(self, run: Run) -> None:
        guard = run.team.guard
        if guard is not None and guard.input:
            allowed, _ = await self.check(run, run.message, checked="", held=False)
            if not allowed:  # skipping the message would leave nothing to run
                raise Ended(RunEnd.BLOCKED, f"the guard {guard.agent!r} blocked the message")
        await KINDS[run.team.kind](self, run)

    async def _finish(self, run: Run, reason: RunEnd, message: str) -> None:
        for turn in run.held:
            if turn.task is not None:  # it started
                await self.turns.release(turn, False, "the run ended before the guard allowed this reply")
        run.held.clear()
        elapsed_ms = (time.monotonic() - run.started_at) * 1000 if run.started_at else 0.0
        usage = {
            "prompt_tokens": run.prompt_tokens,
            "completion_tokens": run.completion_tokens,
            "cached_prompt_tokens": run.cached_prompt_tokens,
        }
        payload = {
            "team": run.team.name,
            "reason": reason.value,
            "message": message,
            "turns": run.turns,
            "usage": usage,
            "elapsed_ms": elapsed_ms,
        }
        try:
            await self.recorder.record(Entry("team.end", turn=run.id, outcome=_OUTCOME.get(reason, "ok"), payload=payload))
        except EnclaveError as exc:  # the run ends either way; say why it is not recorded
            reason, message = RunEnd.ERROR, exc.message
        body = RunEnded(
            reason.value,
            message,
            run.turns,
            run.prompt_tokens,
            run.completion_tokens,
            run.cached_prompt_tokens,
            elapsed_ms,
            run.answer_agent,
            run.answer,
        )
        self.publish(run, "", body)
        self._runs.pop(run.id, None)
        run.done.set()

    # ---- turns ------------------------------------------------------------------------------

    def _check_agent(self, run: Run, name: str) -> None:
        """End the run when one of its agents was deleted or changed since it began."""
        try:
            agent = self.agents.get(name)
        except NotFound:
            agent = None
        if agent is None or agent is not run.agents[name] or agent.deleting:
            raise Ended(RunEnd.ERROR, f"agent {name!r} was deleted during the run; the run stopped")
        if _settings(agent) != run.settings[name]:
            raise Ended(RunEnd.ERROR, f"agent {name!r} was changed during the run; run the team again")

    async def speak(
        self, run: Run, name: str, message: str, *, member: bool, grammar: str = "", fresh: bool = False, hold: bool = False
    ) -> Turn:
        """One turn of ``name`` within the run's limits; returns it once it has ended."""
        team = run.team
        self._check_agent(run, name)
        if member and run.turns >= team.max_turns:
            raise Ended(RunEnd.MAX_TURNS, f"the run reached its {team.max_turns} member turns")
        left = team.max_tokens - run.completion_tokens
        if left <= 0:
            raise Ended(RunEnd.MAX_TOKENS, f"the run generated its {team.max_tokens} tokens")
        run.step += 1
        options = TurnOptions(run=run.id, step=run.step, grammar=grammar, max_tokens=left, fresh=fresh, hold=hold)
        try:
            turn = self.turns.prepare(name, message, detach=False, options=options)
        except EnclaveError as exc:
            raise Ended(RunEnd.ERROR, f"{name}: {exc.message}") from None
        if hold:
            run.held.append(turn)  # before it starts: a run cancelled meanwhile still ends it
        await self.turns.launch(turn)
        try:
            await turn.done.wait()
        except asyncio.CancelledError:  # the run was cancelled: the turn it cut still counts
            self.turns.cancel(turn)
            await _outlast(turn.done.wait())
            _count(run, turn, member)
            raise
        _count(run, turn, member)
        self._check_agent(run, name)
        if turn.error is not None:
            raise Ended(RunEnd.ERROR, f"{name}: {turn.error.message}")
        if turn.result is None or turn.result.finish is Finish.CANCELLED:
            raise Ended(RunEnd.CANCELLED, f"the turn of {name!r} was cancelled, so the run stopped")
        if run.completion_tokens >= team.max_tokens:
            raise Ended(RunEnd.MAX_TOKENS, f"the run generated its {team.max_tokens} tokens")
        return turn

    async def member_turn(self, run: Run, name: str, message: str, *, grammar: str = "") -> str | None:
        """A member speaks; its reply goes to the guard when the team has one. Returns the
        reply, or None when the guard blocked it and the team skips blocked replies."""
        guard = run.team.guard
        checks = guard is not None and guard.output != "none"
        hold = checks and guard is not None and guard.output == "hold"
        turn = await self.speak(run, name, message, member=True, grammar=grammar, hold=hold)
        reply = turn.reply
        if checks:
            allowed, reason = await self.check(run, reply, checked=name, held=hold)
            if hold:
                run.held.remove(turn)
                await self.turns.release(turn, allowed, f"blocked by the team's guard: {reason}")
            if not allowed:
                if guard is not None and guard.on_block == "stop":
                    raise Ended(RunEnd.BLOCKED, f"the guard {guard.agent!r} blocked the reply of {name!r}")
                return None
        run.said.append((name, reply))
        run.seen[name] = len(run.said)
        run.answer_agent, run.answer = name, reply
        if run.team.stop_text and run.team.stop_text in reply:
            raise Ended(RunEnd.STOP_TEXT, f"{name!r} said the team's stop text")
        return reply

    async def check(self, run: Run, text: str, *, checked: str, held: bool) -> tuple[bool, str]:
        """The guard's verdict on ``text`` (the run's message when ``checked`` is ""). A guard
        that fails, or whose answer is not a verdict, blocks."""
        guard = run.team.guard
        assert guard is not None
        what = f"this reply of {checked}" if checked else "this message sent to the team"
        ask = f"Check {what}:\n\n{text}\n\nAnswer allow or block, a colon, and a one-line reason."
        try:
            async with asyncio.timeout(guard.timeout):
                turn = await self.speak(run, guard.agent, ask, member=False, grammar=VERDICT_GRAMMAR, fresh=True)
            allowed, reason = parse_verdict(turn.reply)
        except TimeoutError:  # the guard's own limit (the run's is the run's end)
            allowed, reason = False, f"the guard did not answer within {guard.timeout:g} seconds, so it blocks"
        except Ended as end:
            if end.reason is not RunEnd.ERROR:
                raise
            allowed, reason = False, f"the guard failed ({end.message}), so it blocks"
        await self.recorder.record(
            Entry(
                "team.guard",
                agent=guard.agent,
                turn=run.id,
                outcome="ok" if allowed else "denied",
                payload={"step": run.step, "checked": checked, "verdict": "allow" if allowed else "block", "held": held},
                text={"reason": reason},
            )
        )
        self.publish(run, checked or guard.agent, GuardChecked(guard.agent, checked, allowed, reason, held))
        return allowed, reason


def parse_verdict(reply: str) -> tuple[bool, str]:
    """``allow: reason`` or ``block: reason``; anything else blocks."""
    verdict, _, reason = reply.strip().partition(":")
    reason = " ".join(reason.split())[:200] or "no reason given"
    if verdict == "allow":
        return True, reason
    if verdict == "block":
        return False, reason
    return False, "the guard's answer was not a verdict, so it blocks"


def _count(run: Run, turn: Turn, member: bool) -> None:
    """Add an ended turn to the run's totals (its tokens were spent, however it ended)."""
    if member:
        run.turns += 1
    if turn.result is not None:
        run.prompt_tokens += turn.result.prompt_tokens
        run.completion_tokens += turn.result.completion_tokens
        run.cached_prompt_tokens += turn.result.cached_prompt_tokens


async def _outlast(waiting: Awaitable[object]) -> None:
    """Wait for a cancelled turn to end, through further cancels: its events and records must
    come before the run's end."""
    task = asyncio.ensure_future(waiting)
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            continue


# ---- the kinds: who speaks next, and what each is told --------------------------------------


async def _chain(rm: RunManager, run: Run) -> None:
    """Each member's reply is the next member's input; the last reply is the answer."""
    text, by = run.message, ""
    for name in run.team.members:
        reply = await rm.member_turn(run, name, run.instructed(name, f"{by}: {text}" if by else text))
        if reply is not None:  # a reply the guard skipped is passed over
            text, by = reply, name


async def _roundtable(rm: RunManager, run: Run) -> None:
    """Members speak in order, round after round, each told what was said since it last
    spoke; only a limit or the stop text ends it."""
    while True:
        for name in run.team.members:
            await rm.member_turn(run, name, run.instructed(name, run.news_for(name)))


def choice_grammar(names: list[str]) -> str:
    """GBNF allowing exactly one of ``names`` (agent names: letters, digits, '.', '_', '-')."""
    return "root ::= " + " | ".join(f'"{n}"' for n in names)


async def _director(rm: RunManager, run: Run) -> None:
    """The director chooses who speaks next, or DONE, under a grammar that allows only
    those: it can never name an agent that is not a member. Its first choice cannot be DONE:
    a run in which no member spoke has no answer."""
    team, director = run.team, run.team.director
    first, then = choice_grammar(list(team.members)), choice_grammar([*team.members, "DONE"])
    ask = f"Who should speak next: {', '.join(team.members)}?"
    while True:
        news = run.news_for(director)
        question = ask if not run.turns else f"{ask} Answer DONE if the discussion is finished."
        message = f"{news}\n\n{question}" if news else question
        turn = await rm.speak(run, director, message, member=False, grammar=then if run.turns else first)
        choice = turn.reply.strip()
        if choice == "DONE":
            return
        if choice not in team.members:  # cut short by a limit: no name at all
            raise Ended(RunEnd.ERROR, f"the director {director!r} gave no member's name")
        await rm.member_turn(run, choice, run.instructed(choice, run.news_for(choice)))


ESCALATE_GRAMMAR = 'root ::= "ESCALATE" | "ANSWER: " [^\\x00]*'
ESCALATE_ASK = "If you can answer this yourself, reply ANSWER: and your answer. If it needs a more capable colleague, reply ESCALATE."


async def _escalate(rm: RunManager, run: Run) -> None:
    """Each tier answers or escalates (a grammar-constrained verdict); the next tier takes
    the message; the last tier answers."""
    members = run.team.members
    for i, name in enumerate(members):
        if i == len(members) - 1:
            await rm.member_turn(run, name, run.instructed(name, run.message))
            return
        reply = await rm.member_turn(run, name, run.instructed(name, f"{run.message}\n\n{ESCALATE_ASK}"), grammar=ESCALATE_GRAMMAR)
        if reply is not None and reply.startswith("ANSWER:"):
            run.answer = reply.removeprefix("ANSWER:").strip()
            return


KINDS: dict[str, Callable[[RunManager, Run], Awaitable[None]]] = {
    "chain": _chain,
    "roundtable": _roundtable,
    "director": _director,
    "escalate": _escalate,
}
