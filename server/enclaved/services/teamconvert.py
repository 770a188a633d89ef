"""Teams and their runs' events to and from protobuf (``convert.py`` does the rest)."""

from __future__ import annotations

from enclave_contract.v1 import chat_pb2, teams_pb2
from enclaved.domain import hub
from enclaved.domain.teams import DEFAULT_GUARD_TIMEOUT, DEFAULT_MAX_TOKENS, DEFAULT_MAX_TURNS, DEFAULT_TIMEOUT, Guard, Team

_END = {
    "done": chat_pb2.RUN_END_DONE,
    "stop_text": chat_pb2.RUN_END_STOP_TEXT,
    "max_turns": chat_pb2.RUN_END_MAX_TURNS,
    "max_tokens": chat_pb2.RUN_END_MAX_TOKENS,
    "timeout": chat_pb2.RUN_END_TIMEOUT,
    "blocked": chat_pb2.RUN_END_BLOCKED,
    "cancelled": chat_pb2.RUN_END_CANCELLED,
    "error": chat_pb2.RUN_END_ERROR,
}


def team(t: Team, busy: bool = False) -> teams_pb2.Team:
    out = teams_pb2.Team(
        name=t.name,
        kind=t.kind,
        members=list(t.members),
        director=t.director,
        max_turns=t.max_turns,
        max_tokens=t.max_tokens,
        timeout_seconds=t.timeout,
        stop_text=t.stop_text,
        instructions=dict(t.instructions),
        busy=busy,
    )
    if t.guard is not None:
        g = t.guard
        out.guard.CopyFrom(
            teams_pb2.TeamGuard(agent=g.agent, input=g.input, output=g.output, on_block=g.on_block, timeout_seconds=g.timeout)
        )
    return out


def team_from(p: teams_pb2.Team) -> Team:
    """Fields the client left unset are the defaults (a guard's output: hold; on_block: stop)."""
    guard = None
    if p.HasField("guard"):
        g = p.guard
        timeout = g.timeout_seconds if g.HasField("timeout_seconds") else DEFAULT_GUARD_TIMEOUT
        guard = Guard(agent=g.agent, input=g.input, output=g.output or "hold", on_block=g.on_block or "stop", timeout=timeout)
    return Team(
        name=p.name,
        kind=p.kind,
        members=tuple(p.members),
        director=p.director,
        max_turns=p.max_turns if p.HasField("max_turns") else DEFAULT_MAX_TURNS,
        max_tokens=p.max_tokens if p.HasField("max_tokens") else DEFAULT_MAX_TOKENS,
        timeout=p.timeout_seconds if p.HasField("timeout_seconds") else DEFAULT_TIMEOUT,
        stop_text=p.stop_text,
        instructions=dict(p.instructions),
        guard=guard,
    )


def run_event(out: chat_pb2.ChatEvent, b: object) -> bool:
    """Fill ``out`` from a run's own event; False when ``b`` is not one."""
    if isinstance(b, hub.RunStarted):
        out.run_started.CopyFrom(
            chat_pb2.RunStarted(
                team=b.team,
                kind=b.kind,
                members=list(b.members),
                max_turns=b.max_turns,
                max_tokens=b.max_tokens,
                timeout_seconds=b.timeout,
                message=b.message,
            )
        )
    elif isinstance(b, hub.GuardChecked):
        out.guard_verdict.CopyFrom(chat_pb2.GuardVerdict(guard=b.guard, checked=b.checked, allowed=b.allowed, reason=b.reason, held=b.held))
    elif isinstance(b, hub.RunEnded):
        out.run_finished.CopyFrom(
            chat_pb2.RunFinished(
                reason=_END[b.reason],
                message=b.message,
                turns=b.turns,
                usage=chat_pb2.Usage(
                    prompt_tokens=b.prompt_tokens, completion_tokens=b.completion_tokens, cached_prompt_tokens=b.cached_prompt_tokens
                ),
                elapsed_ms=b.elapsed_ms,
                answer_agent=b.answer_agent,
                answer=b.answer,
            )
        )
    else:
        return False
    return True
