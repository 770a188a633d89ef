"""A scripted stand-in for enclaved: the real gRPC services over a real Unix socket, no model.

This is a scripted token source, allowed in exactly two places: pixel-exact TUI snapshot tests
(which need the same events every run) and the TUI benchmark ``bench/bench_tui.py`` (which
needs a token rate no model on this machine reaches). Every other test runs the real
``enclaved`` on the real llama.cpp (see ``conftest.py``).

``Audit`` is served from ``audit_records`` (filters applied simply: exact actor user, agent
and outcome, action exact or a prefix ending in ``*``); ``append_audit`` writes one more and
hands it to every ``Follow`` that wants it; ``audit_rows_served`` counts the rows ``Rows``
returned, so a test can tell how much of the log a client read.

Two ways to feed ``Chat.Watch``:

- **scripted**: ``events=[...]`` are sent at once, in order, then the stream stays open (and
  quiet) until the client cancels it or the daemon stops; ``push_events`` sends more, later, to
  every Watch open then (a turn that happens while the client looks), and ``scripted_turn``
  builds one turn's events: started, history trimmed (optional), generating, the reply, and
  finished with a given finish reason;
- **synthetic**: ``rate=R`` with ``agents=N`` (agents ``a1``..``aN``): like the real daemon,
  each agent gets one ``TokenDelta`` about every 33 ms (``COALESCE_SECONDS``), R/N/30 tokens on average (the
  fraction carried over), each token a lowercase ASCII word and a space. A turn is
  ``started``, ``phase`` GENERATING, deltas, and ``finished`` (MAX_TOKENS) after
  ``turn_tokens`` tokens; the next turn starts at once. Tokens are counted once gRPC has taken
  them (``context.write`` returned). gRPC's client buffers megabytes of unread messages, so
  that count is what was sent, not what a slow client has shown: with ``mark_every=S`` every
  agent's text carries, every S seconds, a marker token (``zq`` and four letters, unique),
  recorded in ``marks`` with the time it was written and the tokens written by then, so a
  benchmark can see when the client actually displays it.

In-process (async tests)::

    d = ScriptedDaemon(sock, agents=[agent("a1")], events=[...])
    await d.start()
    ...
    await d.stop()

As a process (the benchmark)::

    python tests/tui/scripted_daemon.py --socket PATH --agents 4 --rate 2000 [--stats FILE]

serves synthetic mode until SIGTERM or SIGINT, writing ``{"tokens", "seconds", ...}`` (JSON)
to FILE every 0.25 s and on exit; ``--mark-every S`` adds the markers (``"marks"``: word,
``time.monotonic()`` when written, tokens written by then).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import grpc

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
from enclaved.engine.requests import COALESCE_SECONDS
from enclaved.transport.peers import PeerRegistry

TICK_SECONDS = COALESCE_SECONDS  # one delta per agent this often, as the real daemon coalesces text
MAX_CATCH_UP_SECONDS = 0.1  # time spent blocked on a slow reader beyond this is not made up
WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "it",
    "that",
    "was",
    "for",
    "on",
    "are",
    "with",
    "as",
    "his",
    "they",
    "be",
    "at",
    "one",
    "have",
    "this",
    "from",
    "or",
    "had",
    "by",
    "word",
    "but",
    "what",
    "some",
    "we",
    "can",
    "out",
    "other",
    "were",
    "all",
    "there",
    "when",
    "up",
    "use",
    "your",
    "how",
    "said",
    "an",
    "each",
    "she",
    "which",
    "do",
    "their",
    "time",
    "if",
    "will",
    "way",
    "about",
    "many",
    "then",
    "them",
    "write",
    "would",
    "like",
    "so",
    "these",
    "her",
    "long",
    "make",
    "thing",
    "see",
    "him",
    "two",
    "has",
    "look",
    "more",
    "day",
    "could",
    "go",
    "come",
    "did",
    "number",
    "sound",
    "no",
    "most",
    "people",
    "my",
    "over",
    "know",
    "water",
    "than",
    "call",
    "first",
    "who",
    "may",
    "down",
    "side",
    "been",
    "now",
    "find",
]


class ScriptedDaemon:
    """Serves ``Agents``, ``Models``, ``Status``, ``Chat.Watch`` and ``Audit`` from fixed data.

    Give ``events`` (scripted mode) or ``rate`` (synthetic mode), not both; with neither,
    Watch stays open and quiet. ``agents`` may be the agents to list, or a count ``N`` for
    agents ``a1``..``aN`` on the model "synthetic". ``audit_verify`` is what ``Audit.Verify``
    answers; without it Verify is UNIMPLEMENTED, as on a daemon without an audit log.
    """

    def __init__(
        self,
        socket: str | Path,
        *,
        agents: Sequence[agents_pb2.Agent] | int = (),
        transcripts: Mapping[str, Sequence[agents_pb2.TranscriptMessage]] | None = None,
        models: Sequence[models_pb2.Model] = (),
        status: status_pb2.StatusSnapshot | None = None,
        events: Sequence[chat_pb2.ChatEvent] | None = None,
        rate: float | None = None,
        turn_tokens: int = 400,
        mark_every: float | None = None,
        seed: int = 0,
        audit_records: Sequence[audit_pb2.AuditRecord] = (),
        audit_verify: audit_pb2.AuditVerifyResponse | None = None,
    ) -> None:
        if events is not None and rate is not None:
            raise ValueError("give scripted events or a synthetic rate, not both")
        if isinstance(agents, int):
            agents = [agents_pb2.Agent(name=f"a{i}", model="synthetic", busy=rate is not None) for i in range(1, agents + 1)]
        self.socket = Path(socket)
        self.agents = list(agents)
        self.transcripts = {k: list(v) for k, v in (transcripts or {}).items()}
        self.models = list(models)
        self.status = status or status_pb2.StatusSnapshot(version="scripted", agents=len(self.agents))
        self.events = list(events) if events is not None else None
        self.rate = rate
        self.turn_tokens = turn_tokens
        self.mark_every = mark_every
        self.seed = seed
        self.marks: list[tuple[str, float, int]] = []  # (marker, time.monotonic() written, tokens written by then)
        self._next_marker = 0
        self.tokens_delivered = 0  # synthetic tokens gRPC has taken, over every Watch stream
        self.first_watch: float | None = None  # time.monotonic() when the first Watch began
        self.audit_records = list(audit_records)
        self.audit_verify = audit_verify
        self.audit_rows_served = 0  # records Audit.Rows has returned, over every call
        self.audit_pages: list[tuple[int, int]] = []  # (offset, limit) of every Audit.Rows call
        self.audit_verifies = 0  # Audit.Verify calls
        self._audit_followers: list[tuple[audit_pb2.AuditQuery, asyncio.Queue[audit_pb2.AuditRecord | None]]] = []
        self._watchers: list[asyncio.Queue[chat_pb2.ChatEvent | None]] = []  # scripted or quiet Watch streams open
        self._server: grpc.aio.Server | None = None
        self._peers: PeerRegistry | None = None
        self._stopping = asyncio.Event()

    # ---- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        self._stopping = asyncio.Event()
        server = grpc.aio.server()
        agents_pb2_grpc.add_AgentsServicer_to_server(_Agents(self), server)
        models_pb2_grpc.add_ModelsServicer_to_server(_Models(self), server)
        status_pb2_grpc.add_StatusServicer_to_server(_Status(self), server)
        chat_pb2_grpc.add_ChatServicer_to_server(_Chat(self), server)
        audit_pb2_grpc.add_AuditServicer_to_server(_Audit(self), server)
        self._peers = PeerRegistry()  # the real handshake socket: the client insists on one
        await self._peers.start(self.socket)
        if server.add_insecure_port(f"unix:{self.socket}") == 0:
            raise OSError(f"cannot listen on {self.socket}")
        await server.start()
        self._server = server

    async def stop(self, grace: float = 0.5) -> None:
        self._stopping.set()
        for _, queue in self._audit_followers:
            queue.put_nowait(None)  # Follow ends, as Watch does
        for watcher in self._watchers:
            watcher.put_nowait(None)
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None
        if self._peers is not None:
            await self._peers.close()
            self._peers = None

    async def __aenter__(self) -> ScriptedDaemon:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def stats(self, marks: bool = False) -> dict[str, object]:
        """Synthetic tokens delivered and the seconds since the first Watch began (and the marks)."""
        seconds = time.monotonic() - self.first_watch if self.first_watch is not None else 0.0
        stats: dict[str, object] = {
            "tokens": self.tokens_delivered,
            "seconds": seconds,
            "tokens_per_second": self.tokens_delivered / seconds if seconds > 0 else 0.0,
        }
        if marks:
            stats["marks"] = self.marks
        return stats

    @property
    def watches(self) -> int:
        """Scripted (or quiet) Watch streams open now: the ones ``push_events`` reaches."""
        return len(self._watchers)

    def push_events(self, events: Sequence[chat_pb2.ChatEvent]) -> None:
        """More events, as if they happened now: sent, in order, to every scripted or quiet
        Watch stream open (each filtered by the agents it asked for), after what it was sent
        before. Synthetic streams do not take them."""
        for watcher in self._watchers:
            for event in events:
                watcher.put_nowait(event)

    @property
    def audit_follows(self) -> int:
        """Audit.Follow streams open now."""
        return len(self._audit_followers)

    def append_audit(self, record: audit_pb2.AuditRecord) -> None:
        """One more record, as if the daemon just wrote it: counted, paged and followed."""
        self.audit_records.append(record)
        for query, queue in self._audit_followers:
            if audit_matches(query, record):
                queue.put_nowait(record)

    async def _until_stopped(self, timeout: float | None = None) -> bool:
        """Wait until stop() (True) or the timeout (False)."""
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout)
            return True
        except TimeoutError:
            return False

    # ---- synthetic stream -------------------------------------------------------------------

    async def synthetic(self, names: list[str], context: grpc.aio.ServicerContext) -> None:
        """Write turns of words for ``names`` at ``self.rate`` tokens/s in all until stopped."""
        assert self.rate is not None
        rng = random.Random(self.seed)
        per_agent = self.rate / max(len(names), 1)
        turns = {n: _Turn(n, 0, time.monotonic()) for n in names}
        carry = {n: rng.random() for n in names}  # spread the agents' first whole tokens
        next_mark = {n: time.monotonic() + i * TICK_SECONDS for i, n in enumerate(names)}
        for turn in turns.values():
            await self._write_start(turn, context)
        last = time.monotonic()
        while not self._stopping.is_set():
            if await self._until_stopped(max(0.0, last + TICK_SECONDS - time.monotonic())):
                return
            now = time.monotonic()
            dt, last = min(now - last, MAX_CATCH_UP_SECONDS), now
            for name in names:
                carry[name] += per_agent * dt
                turn = turns[name]
                n = min(int(carry[name]), self.turn_tokens - turn.tokens)
                if n <= 0:
                    continue
                carry[name] -= n
                words = [rng.choice(WORDS) for _ in range(n)]
                mark = self.mark_every is not None and now >= next_mark[name]
                if mark:
                    words[0], self._next_marker = _marker(self._next_marker), self._next_marker + 1
                    next_mark[name] = now + self.mark_every  # type: ignore[operator]
                text = "".join(w + " " for w in words)
                await context.write(chat_pb2.ChatEvent(agent=name, turn_id=turn.id, delta=chat_pb2.TokenDelta(text=text, tokens=n)))
                turn.tokens += n
                self.tokens_delivered += n
                if mark:
                    self.marks.append((words[0], time.monotonic(), self.tokens_delivered))
                if turn.tokens >= self.turn_tokens:
                    await context.write(turn.finished())
                    turns[name] = turn = _Turn(name, turn.number + 1, time.monotonic())
                    await self._write_start(turn, context)

    @staticmethod
    async def _write_start(turn: _Turn, context: grpc.aio.ServicerContext) -> None:
        await context.write(
            chat_pb2.ChatEvent(agent=turn.agent, turn_id=turn.id, started=chat_pb2.TurnStarted(model="synthetic", user_message="go"))
        )
        await context.write(
            chat_pb2.ChatEvent(agent=turn.agent, turn_id=turn.id, phase=chat_pb2.PhaseChanged(phase=chat_pb2.TURN_PHASE_GENERATING))
        )


def scripted_turn(
    agent: str,
    turn_id: str,
    user_message: str,
    reply: str,
    *,
    finish_reason: chat_pb2.FinishReason = chat_pb2.FINISH_REASON_END_OF_TURN,
    dropped_messages: int = 0,
    model: str = "",
    prompt_tokens: int = 24,
    tokens_per_second: float = 40.0,
) -> list[chat_pb2.ChatEvent]:
    """One whole turn's Watch events, the same every run: started, ``truncated`` (when
    ``dropped_messages``: the oldest messages were left out of the prompt), phase generating,
    the reply in one delta (one token a word), and finished with ``finish_reason`` (max tokens,
    cancelled, context full, ...), its usage and a fixed generation speed."""
    tokens = len(reply.split())
    events = [chat_pb2.ChatEvent(agent=agent, turn_id=turn_id, started=chat_pb2.TurnStarted(model=model, user_message=user_message))]
    if dropped_messages:
        trimmed = chat_pb2.HistoryTruncated(dropped_messages=dropped_messages, prompt_tokens=prompt_tokens)
        events.append(chat_pb2.ChatEvent(agent=agent, turn_id=turn_id, truncated=trimmed))
    events.append(chat_pb2.ChatEvent(agent=agent, turn_id=turn_id, phase=chat_pb2.PhaseChanged(phase=chat_pb2.TURN_PHASE_GENERATING)))
    if reply:
        events.append(chat_pb2.ChatEvent(agent=agent, turn_id=turn_id, delta=chat_pb2.TokenDelta(text=reply, tokens=tokens)))
    seconds = tokens / tokens_per_second if tokens_per_second else 0.0
    finished = chat_pb2.TurnFinished(
        finish_reason=finish_reason,
        usage=chat_pb2.Usage(prompt_tokens=prompt_tokens, completion_tokens=tokens),
        timings=chat_pb2.Timings(generation_ms=seconds * 1000, generation_tokens_per_second=tokens_per_second),
    )
    events.append(chat_pb2.ChatEvent(agent=agent, turn_id=turn_id, finished=finished))
    return events


def _marker(i: int) -> str:
    """A token no word list has: ``zq`` and four letters spelling ``i`` (unique below 26**4)."""
    letters = ""
    for _ in range(4):
        i, r = divmod(i, 26)
        letters = chr(ord("a") + r) + letters
    return "zq" + letters


class _Turn:
    PROMPT_TOKENS = 24

    def __init__(self, agent: str, number: int, started: float) -> None:
        self.agent, self.number, self.started, self.tokens = agent, number, started, 0
        self.id = f"syn-{agent}-{number:05d}"

    def finished(self) -> chat_pb2.ChatEvent:
        gen_s = max(time.monotonic() - self.started, 1e-6)
        return chat_pb2.ChatEvent(
            agent=self.agent,
            turn_id=self.id,
            finished=chat_pb2.TurnFinished(
                finish_reason=chat_pb2.FINISH_REASON_MAX_TOKENS,
                usage=chat_pb2.Usage(prompt_tokens=self.PROMPT_TOKENS, completion_tokens=self.tokens),
                timings=chat_pb2.Timings(
                    queue_ms=0.0,
                    time_to_first_token_ms=20.0,
                    prompt_ms=20.0,
                    generation_ms=gen_s * 1000,
                    prompt_tokens_per_second=self.PROMPT_TOKENS / 0.02,
                    generation_tokens_per_second=self.tokens / gen_s,
                ),
            ),
        )


# ---- services ------------------------------------------------------------------------------


class _Agents(agents_pb2_grpc.AgentsServicer):
    def __init__(self, d: ScriptedDaemon) -> None:
        self.d = d

    async def ListAgents(self, request: agents_pb2.ListAgentsRequest, context: grpc.aio.ServicerContext) -> agents_pb2.ListAgentsResponse:
        return agents_pb2.ListAgentsResponse(agents=self.d.agents)

    async def GetTranscript(
        self, request: agents_pb2.GetTranscriptRequest, context: grpc.aio.ServicerContext
    ) -> agents_pb2.GetTranscriptResponse:
        if request.name not in {a.name for a in self.d.agents}:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no agent named {request.name!r}")
        return agents_pb2.GetTranscriptResponse(messages=self.d.transcripts.get(request.name, []))


class _Models(models_pb2_grpc.ModelsServicer):
    def __init__(self, d: ScriptedDaemon) -> None:
        self.d = d

    async def ListModels(self, request: models_pb2.ListModelsRequest, context: grpc.aio.ServicerContext) -> models_pb2.ListModelsResponse:
        return models_pb2.ListModelsResponse(models=self.d.models)


class _Status(status_pb2_grpc.StatusServicer):
    def __init__(self, d: ScriptedDaemon) -> None:
        self.d = d

    async def Status(self, request: status_pb2.StatusRequest, context: grpc.aio.ServicerContext) -> None:
        interval = max(request.interval_seconds or 1.0, 0.1)
        while True:
            await context.write(self.d.status)
            if request.once or await self.d._until_stopped(interval):
                return


class _Chat(chat_pb2_grpc.ChatServicer):
    def __init__(self, d: ScriptedDaemon) -> None:
        self.d = d

    async def Watch(self, request: chat_pb2.WatchRequest, context: grpc.aio.ServicerContext) -> None:
        known = [a.name for a in self.d.agents]
        for name in request.agents:
            if name not in known:
                await context.abort(grpc.StatusCode.NOT_FOUND, f"no agent named {name!r}")
        wanted = set(request.agents or known)
        if self.d.rate is not None and self.d.events is None:
            if self.d.first_watch is None:
                self.d.first_watch = time.monotonic()
            await self.d.synthetic([n for n in known if n in wanted], context)
            return
        # open and quiet until the client cancels or the daemon stops, but for pushed events
        pushed: asyncio.Queue[chat_pb2.ChatEvent | None] = asyncio.Queue()
        self.d._watchers.append(pushed)  # before the scripted events: nothing pushed meanwhile is lost
        try:
            if self.d._stopping.is_set():
                return
            for event in self.d.events or ():
                if not event.agent or event.agent in wanted:
                    await context.write(event)
            while (later := await pushed.get()) is not None:
                if not later.agent or later.agent in wanted:
                    await context.write(later)
        finally:
            self.d._watchers.remove(pushed)


def audit_matches(query: audit_pb2.AuditQuery, record: audit_pb2.AuditRecord) -> bool:
    """The scripted filter: exact actor user, agent and outcome; action exact, or a prefix
    when it ends in ``*`` (``chat.*``). ``since`` and ``until`` are not scripted."""
    if query.action.endswith("*"):
        action_ok = record.action.startswith(query.action[:-1])
    else:
        action_ok = query.action in ("", record.action)
    return (
        action_ok and query.actor in ("", record.actor.user) and query.agent in ("", record.agent) and query.outcome in ("", record.outcome)
    )


class _Audit(audit_pb2_grpc.AuditServicer):
    def __init__(self, d: ScriptedDaemon) -> None:
        self.d = d

    def _matching(self, query: audit_pb2.AuditQuery) -> list[audit_pb2.AuditRecord]:
        return [r for r in self.d.audit_records if audit_matches(query, r)]

    async def Count(self, request: audit_pb2.AuditCountRequest, context: grpc.aio.ServicerContext) -> audit_pb2.AuditCountResponse:
        return audit_pb2.AuditCountResponse(count=len(self._matching(request.query)))

    async def Rows(self, request: audit_pb2.AuditRowsRequest, context: grpc.aio.ServicerContext) -> audit_pb2.AuditRowsResponse:
        if not 0 < request.limit <= 1000 or request.offset < 0:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "offset must be >= 0 and limit 1 to 1000")
        rows = self._matching(request.query)[request.offset : request.offset + request.limit]
        self.d.audit_pages.append((request.offset, request.limit))
        self.d.audit_rows_served += len(rows)
        return audit_pb2.AuditRowsResponse(records=rows)

    async def Follow(self, request: audit_pb2.AuditFollowRequest, context: grpc.aio.ServicerContext) -> None:
        queue: asyncio.Queue[audit_pb2.AuditRecord | None] = asyncio.Queue()
        follower = (request.query, queue)
        self.d._audit_followers.append(follower)
        try:
            for record in self._matching(request.query)[-request.last :] if request.last > 0 else []:
                await context.write(record)
            while (record := await queue.get()) is not None:
                await context.write(record)
        finally:
            self.d._audit_followers.remove(follower)

    async def Verify(self, request: audit_pb2.AuditVerifyRequest, context: grpc.aio.ServicerContext) -> audit_pb2.AuditVerifyResponse:
        self.d.audit_verifies += 1
        if self.d.audit_verify is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "this daemon keeps no audit log")
        return self.d.audit_verify


# ---- the benchmark's process ---------------------------------------------------------------


def _write_stats(path: Path, d: ScriptedDaemon) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(d.stats(marks=d.mark_every is not None)))
    os.replace(tmp, path)


async def _serve(args: argparse.Namespace) -> None:
    d = ScriptedDaemon(
        args.socket, agents=args.agents, rate=args.rate, turn_tokens=args.turn_tokens, mark_every=args.mark_every, seed=args.seed
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await d.start()
    try:
        while True:
            if args.stats:
                _write_stats(args.stats, d)
            try:
                await asyncio.wait_for(stop.wait(), 0.25)
                break
            except TimeoutError:
                pass
    finally:
        if args.stats:
            _write_stats(args.stats, d)
        try:
            await asyncio.wait_for(d.stop(grace=0.2), 5)
        except TimeoutError:
            pass  # a stream stuck on a peer that went away must not keep this process alive


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Scripted token source for the TUI benchmark (synthetic mode).")
    ap.add_argument("--socket", type=Path, required=True)
    ap.add_argument("--agents", type=int, default=4)
    ap.add_argument("--rate", type=float, required=True, help="aggregate tokens per second, all agents together")
    ap.add_argument("--turn-tokens", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mark-every", type=float, metavar="S", help="put a marker token in each agent's text every S seconds")
    ap.add_argument("--stats", type=Path, help="write delivered tokens and seconds here (JSON), every 0.25 s and on exit")
    args = ap.parse_args(argv)
    if args.socket.exists():
        args.socket.unlink()
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
