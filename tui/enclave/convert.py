"""The one place where the daemon's protobuf messages become the workbench's view models, and
back: ``enclave.protocol`` calls these, and nothing under screens/ or widgets/ sees a stub."""

from __future__ import annotations

from enclave.messages import (
    AgentChanged,
    Change,
    Phase,
    RunUpdate,
    TurnDelta,
    TurnFailed,
    TurnFinished,
    TurnPhase,
    TurnServed,
    TurnStarted,
    TurnTrimmed,
    WatchEvent,
)
from enclave.views import (
    AgentView,
    AuditActor,
    AuditQuery,
    AuditRecord,
    ChatMessage,
    GuardView,
    LoadResult,
    ModelView,
    Role,
    RunView,
    Sampling,
    StatusView,
    TeamView,
    VerifyResult,
)
from enclave_contract.v1 import agents_pb2, audit_pb2, chat_pb2, models_pb2, status_pb2, teams_pb2

_ROLES: dict[int, Role] = {
    agents_pb2.ROLE_SYSTEM: "system",
    agents_pb2.ROLE_USER: "user",
    agents_pb2.ROLE_ASSISTANT: "assistant",
}
MODEL_STATES = {
    models_pb2.MODEL_STATE_AVAILABLE: "available",
    models_pb2.MODEL_STATE_LOADING: "loading",
    models_pb2.MODEL_STATE_LOADED: "loaded",
    models_pb2.MODEL_STATE_INVALID: "invalid",
    models_pb2.MODEL_STATE_FAILED: "failed",
    models_pb2.MODEL_STATE_PENDING: "pending",
}
_PHASES: dict[int, Phase] = {
    chat_pb2.TURN_PHASE_QUEUED: "queued",
    chat_pb2.TURN_PHASE_PREFILL: "prefill",
    chat_pb2.TURN_PHASE_GENERATING: "generating",
}
_CHANGES: dict[int, Change] = {
    chat_pb2.AgentChanged.CHANGE_CREATED: "created",
    chat_pb2.AgentChanged.CHANGE_UPDATED: "updated",
    chat_pb2.AgentChanged.CHANGE_DELETED: "deleted",
    chat_pb2.AgentChanged.CHANGE_CLEARED: "cleared",
}
_SAMPLING_FIELDS = ("temperature", "top_k", "top_p", "min_p", "repeat_penalty", "seed", "max_tokens")


def finish_reason(value: int) -> str:
    """``FINISH_REASON_MAX_TOKENS`` → ``max_tokens``."""
    return chat_pb2.FinishReason.Name(value).removeprefix("FINISH_REASON_").lower()


# ---- agents ----------------------------------------------------------------------------------


def sampling(s: agents_pb2.SamplingParams) -> Sampling:
    values = {name: getattr(s, name) if s.HasField(name) else None for name in _SAMPLING_FIELDS}
    return Sampling(**values, stop=tuple(s.stop))


def sampling_params(s: Sampling) -> agents_pb2.SamplingParams:
    values = {name: getattr(s, name) for name in _SAMPLING_FIELDS if getattr(s, name) is not None}
    return agents_pb2.SamplingParams(**values, stop=list(s.stop))


def agent(a: agents_pb2.Agent) -> AgentView:
    return AgentView(
        name=a.name,
        model=a.model,
        system=a.system,
        sampling=sampling(a.sampling),
        turns=a.turns,
        busy=a.busy,
        context_tokens=a.context_tokens,
        damage=a.damage,
        fallbacks=tuple(a.fallbacks),
    )


def agent_message(a: AgentView) -> agents_pb2.Agent:
    """What PutAgent takes: the settings a client may change."""
    return agents_pb2.Agent(name=a.name, model=a.model, system=a.system, sampling=sampling_params(a.sampling), fallbacks=list(a.fallbacks))


def chat_message(m: agents_pb2.TranscriptMessage) -> ChatMessage:
    return ChatMessage(
        role=_ROLES.get(m.role, "user"),
        content=m.content,
        turn_id=m.turn_id,
        finish_reason=m.finish_reason,
        dropped_messages=m.dropped_messages,
    )


# ---- models and status -----------------------------------------------------------------------


def model(m: models_pb2.Model) -> ModelView:
    return ModelView(
        name=m.name,
        state=MODEL_STATES.get(m.state, "?"),
        size_bytes=m.size_bytes,
        quantization=m.quantization,
    )


def model_status(m: status_pb2.ModelStatus) -> ModelView:
    return ModelView(
        name=m.name,
        state=MODEL_STATES.get(m.state, "?"),
        size_bytes=m.size_bytes,
        quantization=m.quantization,
        memory_bytes=m.memory_bytes,
        context_size=m.context_size,
        sequence_slots=m.sequence_slots,
        active_sequences=m.active_sequences,
        queued_requests=m.queued_requests,
        decode_tokens_per_second=m.decode_tokens_per_second,
        prompt_tokens_per_second=m.prompt_tokens_per_second,
        kept_states=m.state_cache_entries,
        kept_bytes=m.state_cache_bytes,
        kept_budget_bytes=m.state_cache_budget_bytes,
        first_token=_percentiles(m.first_token) if m.HasField("first_token") else None,
        turn=_percentiles(m.turn) if m.HasField("turn") else None,
    )


def _percentiles(p: status_pb2.Latency) -> tuple[float, float, float]:
    return (p.p50_seconds, p.p95_seconds, p.p99_seconds)


def status(s: status_pb2.StatusSnapshot) -> StatusView:
    return StatusView(
        version=s.version,
        agents=s.agents,
        active_turns=s.active_turns,
        memory_budget_bytes=s.memory_budget_bytes,
        models=tuple(model_status(m) for m in s.models),
    )


def load_result(r: models_pb2.LoadModelResponse) -> LoadResult:
    return LoadResult(load_seconds=r.load_seconds, evicted=tuple(r.evicted))


# ---- turns -----------------------------------------------------------------------------------


def watch_event(e: chat_pb2.ChatEvent) -> WatchEvent | None:
    """A Watch event as the workbench's message; None for what it does not show."""
    kind = e.WhichOneof("kind")
    if kind == "started":
        return TurnStarted(e.agent, e.turn_id, e.started.user_message, e.run_id, e.step, e.started.held)
    if kind in ("run_started", "guard_verdict", "run_finished"):
        return RunUpdate(run_view(e))
    if kind == "phase":
        return TurnPhase(e.agent, e.turn_id, _PHASES.get(e.phase.phase, "queued"), e.phase.prompt_tokens)
    if kind == "delta":
        return TurnDelta(e.agent, e.turn_id, e.delta.text, e.delta.tokens)
    if kind == "served":
        return TurnServed(e.agent, e.turn_id, e.served.model, e.served.reason)
    if kind == "truncated":
        return TurnTrimmed(e.agent, e.turn_id, e.truncated.dropped_messages)
    if kind == "finished":
        f = e.finished
        return TurnFinished(
            e.agent,
            e.turn_id,
            finish_reason=finish_reason(f.finish_reason),
            context_tokens=f.usage.prompt_tokens + f.usage.completion_tokens,
            tokens_per_second=f.timings.generation_tokens_per_second,
        )
    if kind == "error":
        return TurnFailed(e.agent, e.turn_id, e.error.message)
    if kind == "agent_changed" and e.agent_changed.change in _CHANGES:
        return AgentChanged(_CHANGES[e.agent_changed.change], agent(e.agent_changed.agent))
    return None


def run_view(e: chat_pb2.ChatEvent) -> RunView:
    if e.HasField("run_started"):
        r = e.run_started
        return RunView(
            e.run_id, "started", team=r.team, kind=r.kind, members=tuple(r.members), max_turns=r.max_turns, max_tokens=r.max_tokens
        )
    if e.HasField("guard_verdict"):
        v = e.guard_verdict
        return RunView(e.run_id, "verdict", step=e.step, guard=v.guard, checked=v.checked, allowed=v.allowed, reason=v.reason)
    f = e.run_finished
    end = chat_pb2.RunEnd.Name(f.reason).removeprefix("RUN_END_").lower()
    return RunView(e.run_id, "finished", step=e.step, reason=f.message, end=end, turns=f.turns, tokens=f.usage.completion_tokens)


# ---- audit -----------------------------------------------------------------------------------


def audit_query(q: AuditQuery) -> audit_pb2.AuditQuery:
    return audit_pb2.AuditQuery(since=q.since, until=q.until, actor=q.actor, agent=q.agent, action=q.action, outcome=q.outcome)


def audit_record(r: audit_pb2.AuditRecord) -> AuditRecord:
    a = r.actor
    return AuditRecord(
        seq=r.seq,
        time=r.time,
        actor=AuditActor(user=a.user, uid=a.uid, pid=a.pid, auth=a.auth),
        action=r.action,
        agent=r.agent,
        model=r.model,
        turn=r.turn,
        outcome=r.outcome,
        payload_json=r.payload_json,
        hash=r.hash,
    )


def verify_result(r: audit_pb2.AuditVerifyResponse) -> VerifyResult:
    return VerifyResult(
        ok=r.ok,
        summary=r.summary,
        records=r.records,
        last_seq=r.last_seq,
        checkpoint_seq=r.checkpoint_seq,
        bad_seq=r.bad_seq,
    )


# ---- teams -----------------------------------------------------------------------------------


def team(t: teams_pb2.Team) -> TeamView:
    g = t.guard
    guard = GuardView(g.agent, g.input, g.output, g.on_block, g.timeout_seconds if g.HasField("timeout_seconds") else None)
    return TeamView(
        name=t.name,
        kind=t.kind,
        members=tuple(t.members),
        director=t.director,
        max_turns=t.max_turns if t.HasField("max_turns") else None,
        max_tokens=t.max_tokens if t.HasField("max_tokens") else None,
        timeout=t.timeout_seconds if t.HasField("timeout_seconds") else None,
        stop_text=t.stop_text,
        instructions=tuple(sorted(t.instructions.items())),
        guard=guard if t.HasField("guard") else None,
        busy=t.busy,
    )


def team_message(t: TeamView) -> teams_pb2.Team:
    """What PutTeam takes: the whole team (what is None gets the daemon's default)."""
    message = teams_pb2.Team(
        name=t.name,
        kind=t.kind,
        members=t.members,
        director=t.director,
        max_turns=t.max_turns,
        max_tokens=t.max_tokens,
        timeout_seconds=t.timeout,
        stop_text=t.stop_text,
        instructions=dict(t.instructions),
    )
    if t.guard is not None:
        g = t.guard
        message.guard.CopyFrom(
            teams_pb2.TeamGuard(agent=g.agent, input=g.input, output=g.output, on_block=g.on_block, timeout_seconds=g.timeout)
        )
    return message
