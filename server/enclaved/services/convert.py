"""Domain objects to and from protobuf messages."""

from __future__ import annotations

import grpc

from enclave_contract.v1 import agents_pb2, chat_pb2, keys_pb2, models_pb2, status_pb2
from enclaved.domain import hub
from enclaved.domain.agents import Agent, AgentChanged, AgentParams, Change, Message
from enclaved.domain.apikeys import ApiKey
from enclaved.domain.models import ModelView, State
from enclaved.domain.remote import RemoteModelView
from enclaved.domain.telemetry import Percentiles, Telemetry
from enclaved.engine import Finish, TurnResult
from enclaved.services import teamconvert

_MODEL_STATE = {
    State.AVAILABLE: models_pb2.MODEL_STATE_AVAILABLE,
    State.LOADING: models_pb2.MODEL_STATE_LOADING,
    State.LOADED: models_pb2.MODEL_STATE_LOADED,
    State.INVALID: models_pb2.MODEL_STATE_INVALID,
    State.FAILED: models_pb2.MODEL_STATE_FAILED,
    State.PENDING: models_pb2.MODEL_STATE_PENDING,
}
_CHANGE = {
    Change.CREATED: chat_pb2.AgentChanged.CHANGE_CREATED,
    Change.UPDATED: chat_pb2.AgentChanged.CHANGE_UPDATED,
    Change.DELETED: chat_pb2.AgentChanged.CHANGE_DELETED,
    Change.CLEARED: chat_pb2.AgentChanged.CHANGE_CLEARED,
}
_PHASE = {
    hub.Phase.QUEUED: chat_pb2.TURN_PHASE_QUEUED,
    hub.Phase.PREFILL: chat_pb2.TURN_PHASE_PREFILL,
    hub.Phase.GENERATING: chat_pb2.TURN_PHASE_GENERATING,
}
_FINISH = {
    Finish.END_OF_TURN: chat_pb2.FINISH_REASON_END_OF_TURN,
    Finish.MAX_TOKENS: chat_pb2.FINISH_REASON_MAX_TOKENS,
    Finish.STOP_STRING: chat_pb2.FINISH_REASON_STOP_STRING,
    Finish.CANCELLED: chat_pb2.FINISH_REASON_CANCELLED,
    Finish.CONTEXT_FULL: chat_pb2.FINISH_REASON_CONTEXT_FULL,
}
_ROLE = {"user": agents_pb2.ROLE_USER, "assistant": agents_pb2.ROLE_ASSISTANT, "system": agents_pb2.ROLE_SYSTEM}


def model(view: ModelView) -> models_pb2.Model:
    f = view.file
    return models_pb2.Model(
        name=f.name,
        path=str(f.path),
        target=str(f.target) if f.target else "",
        size_bytes=f.size_bytes,
        architecture=f.architecture,
        parameter_count=f.parameter_count,
        quantization=f.quantization,
        context_length=f.context_length,
        state=_MODEL_STATE[view.state],
        problem=view.problem,
        has_chat_template=f.has_chat_template,
    )


def model_status(view: ModelView, telemetry: Telemetry | None = None) -> status_pb2.ModelStatus:
    s = view.stats
    first_token = telemetry.first_token(view.file.name) if telemetry else None
    turn = telemetry.turn(view.file.name) if telemetry else None
    return status_pb2.ModelStatus(
        name=view.file.name,
        state=_MODEL_STATE[view.state],
        memory_bytes=view.memory_bytes,
        size_bytes=view.file.size_bytes,
        quantization=view.file.quantization,
        context_size=view.context_size,
        sequence_slots=view.sequence_slots,
        active_sequences=s.active if s else 0,
        queued_requests=s.queued if s else 0,
        decode_tokens_per_second=s.decode_tps if s else 0.0,
        prompt_tokens_per_second=s.prompt_tps if s else 0.0,
        tokens_generated=s.tokens_generated if s else 0,
        batch_occupancy=s.occupancy if s else 0.0,
        state_cache_bytes=s.state_cache_bytes if s else 0,
        state_cache_budget_bytes=s.state_cache_budget if s else 0,
        state_cache_entries=s.state_cache_entries if s else 0,
        first_token=latency(first_token) if first_token else None,
        turn=latency(turn) if turn else None,
    )


def _replicas(view: RemoteModelView) -> list[models_pb2.EngineReplica]:
    return [
        models_pb2.EngineReplica(
            url=r.url,
            healthy=r.healthy,
            circuit=r.circuit,
            in_flight=r.in_flight,
            latency_p50_ms=r.latency_p50_ms,
            latency_p95_ms=r.latency_p95_ms,
        )
        for r in view.replicas
    ]


def remote_model(view: RemoteModelView) -> models_pb2.Model:
    """A remote model: LOADED while a replica can take it, FAILED (with the reason) if not."""
    state = models_pb2.MODEL_STATE_FAILED if view.problem else models_pb2.MODEL_STATE_LOADED
    return models_pb2.Model(name=view.name, state=state, problem=view.problem, engine=view.engine, replicas=_replicas(view))


def remote_model_status(view: RemoteModelView, telemetry: Telemetry | None = None) -> status_pb2.ModelStatus:
    state = models_pb2.MODEL_STATE_FAILED if view.problem else models_pb2.MODEL_STATE_LOADED
    first_token = telemetry.first_token(view.name) if telemetry else None
    turn = telemetry.turn(view.name) if telemetry else None
    return status_pb2.ModelStatus(
        name=view.name,
        state=state,
        active_sequences=view.in_flight,
        engine=view.engine,
        replicas=_replicas(view),
        problem=view.problem,
        first_token=latency(first_token) if first_token else None,
        turn=latency(turn) if turn else None,
    )


def latency(p: Percentiles) -> status_pb2.Latency:
    return status_pb2.Latency(p50_seconds=p.p50, p95_seconds=p.p95, p99_seconds=p.p99)


def agent(a: Agent) -> agents_pb2.Agent:
    p = a.params
    sampling = agents_pb2.SamplingParams(stop=list(p.stop))
    for name in ("temperature", "top_k", "top_p", "min_p", "repeat_penalty", "seed", "max_tokens"):
        value = getattr(p, name)
        if value is not None:
            setattr(sampling, name, value)
    return agents_pb2.Agent(
        name=a.name,
        model=a.model,
        system=a.system,
        sampling=sampling,
        turns=a.turns,
        busy=a.in_flight > 0,
        context_tokens=a.context_tokens,
        damage=a.damage,
        fallbacks=list(a.fallbacks),
    )


def agent_params(s: agents_pb2.SamplingParams) -> AgentParams:
    """Fields the client left unset (proto3 ``optional``) are None: the default."""
    return AgentParams(
        temperature=s.temperature if s.HasField("temperature") else None,
        top_k=s.top_k if s.HasField("top_k") else None,
        top_p=s.top_p if s.HasField("top_p") else None,
        min_p=s.min_p if s.HasField("min_p") else None,
        repeat_penalty=s.repeat_penalty if s.HasField("repeat_penalty") else None,
        seed=s.seed if s.HasField("seed") else None,
        stop=tuple(s.stop),
        max_tokens=s.max_tokens if s.HasField("max_tokens") else None,
    )


def transcript_message(m: Message) -> agents_pb2.TranscriptMessage:
    return agents_pb2.TranscriptMessage(
        role=_ROLE[m.role], content=m.content, turn_id=m.turn_id, finish_reason=m.finish_reason, dropped_messages=m.dropped_messages
    )


def chat_event(ev: hub.TurnEvent) -> chat_pb2.ChatEvent:
    out = chat_pb2.ChatEvent(agent=ev.agent, turn_id=ev.turn_id, run_id=ev.run, step=ev.step)
    b = ev.body
    if teamconvert.run_event(out, b):
        pass
    elif isinstance(b, hub.Started):
        out.started.CopyFrom(chat_pb2.TurnStarted(model=b.model, user_message=b.user_message, held=b.held))
    elif isinstance(b, hub.PhaseChanged):
        out.phase.CopyFrom(chat_pb2.PhaseChanged(phase=_PHASE[b.phase], prompt_tokens=b.prompt_tokens))
    elif isinstance(b, hub.Delta):
        out.delta.CopyFrom(chat_pb2.TokenDelta(text=b.text, tokens=b.tokens))
    elif isinstance(b, hub.Truncated):
        out.truncated.CopyFrom(chat_pb2.HistoryTruncated(dropped_messages=b.dropped_messages, prompt_tokens=b.prompt_tokens))
    elif isinstance(b, TurnResult):
        out.finished.CopyFrom(finished(b))
    elif isinstance(b, hub.TurnFailed):
        out.error.CopyFrom(chat_pb2.TurnError(code=grpc.StatusCode[b.code].value[0], message=b.message))
    elif isinstance(b, hub.Served):
        out.served.CopyFrom(chat_pb2.ModelServed(model=b.model, engine=b.engine, replica=b.replica, reason=b.reason))
    elif isinstance(b, AgentChanged):
        out.agent_changed.CopyFrom(chat_pb2.AgentChanged(change=_CHANGE[b.change], agent=agent(b.agent)))
    return out


def finished(r: TurnResult) -> chat_pb2.TurnFinished:
    return chat_pb2.TurnFinished(
        finish_reason=_FINISH[r.finish],
        usage=chat_pb2.Usage(
            prompt_tokens=r.prompt_tokens,
            completion_tokens=r.completion_tokens,
            cached_prompt_tokens=r.cached_prompt_tokens,
        ),
        timings=chat_pb2.Timings(
            queue_ms=r.queue_ms,
            time_to_first_token_ms=r.time_to_first_token_ms,
            prompt_ms=r.prompt_ms,
            generation_ms=r.generation_ms,
            prompt_tokens_per_second=r.prompt_tokens_per_second,
            generation_tokens_per_second=r.generation_tokens_per_second,
        ),
    )


def api_key(k: ApiKey) -> keys_pb2.ApiKey:
    return keys_pb2.ApiKey(name=k.name, created_unix=k.created, hint=k.hint)
