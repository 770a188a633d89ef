"""The daemon's gRPC API over its Unix socket, against the real llama.cpp."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from enclave_contract.v1 import agents_pb2, chat_pb2, models_pb2, status_pb2
from tests.helpers import MARKER, Daemon, Stubs, chat

pytestmark = pytest.mark.timeout(120)


def kinds(events: list[chat_pb2.ChatEvent]) -> list[str]:
    return [e.WhichOneof("kind") for e in events]


def text_of(events: list[chat_pb2.ChatEvent], agent: str | None = None) -> str:
    return "".join(e.delta.text for e in events if e.HasField("delta") and (agent is None or e.agent == agent))


def put_agent(stubs: Stubs, name: str, model: str = "tiny", system: str = "", **sampling: object) -> None:
    stubs.agents.PutAgent(
        agents_pb2.PutAgentRequest(
            agent=agents_pb2.Agent(name=name, model=model, system=system, sampling=agents_pb2.SamplingParams(**sampling))
        ),
        timeout=10,
    )


def status(stubs: Stubs) -> status_pb2.StatusSnapshot:
    (snapshot,) = stubs.status.Status(status_pb2.StatusRequest(once=True), timeout=10)
    return snapshot


def model_status(stubs: Stubs, name: str) -> status_pb2.ModelStatus:
    return next(m for m in status(stubs).models if m.name == name)


def wait_for(predicate: callable, timeout: float = 15, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def rpc_error(fn: callable) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        result = fn()
        if hasattr(result, "__iter__") and not isinstance(result, (str, bytes)):
            list(result)
    return info.value


def assert_one_line(err: grpc.RpcError) -> None:
    details = err.details()
    assert details and "\n" not in details and "Traceback" not in details
    assert MARKER not in details


# ---- standard services ---------------------------------------------------------------------


def test_health_and_reflection(shared_daemon: Daemon) -> None:
    ch = shared_daemon.channel()
    health = health_pb2_grpc.HealthStub(ch)
    for service in ("", "enclave.v1.Chat", "enclave.v1.Models", "enclave.v1.Agents", "enclave.v1.Status"):
        assert health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status == health_pb2.HealthCheckResponse.SERVING
    refl = reflection_pb2_grpc.ServerReflectionStub(ch)
    reply = next(iter(refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)))
    names = {s.name for s in reply.list_services_response.service}
    assert {"enclave.v1.Models", "enclave.v1.Agents", "enclave.v1.Chat", "enclave.v1.Status", "grpc.health.v1.Health"} <= names


# ---- models ----------------------------------------------------------------------------------


def test_models_are_listed_from_their_headers(shared_daemon: Daemon) -> None:
    models = {m.name: m for m in shared_daemon.stubs().models.ListModels(models_pb2.ListModelsRequest(), timeout=10).models}
    assert {"tiny", "small", "eos", "plain", "broken"} <= models.keys()
    tiny = models["tiny"]
    assert tiny.architecture == "llama" and tiny.quantization == "F16" and tiny.parameter_count > 100_000
    assert tiny.context_length == 4096 and tiny.has_chat_template and tiny.size_bytes > 0
    assert not models["plain"].has_chat_template
    broken = models["broken"]
    assert broken.state == models_pb2.MODEL_STATE_INVALID
    assert "not a valid GGUF" in broken.problem


def test_load_and_unload(shared_daemon: Daemon) -> None:
    stubs = shared_daemon.stubs()
    r = stubs.models.LoadModel(models_pb2.LoadModelRequest(name="plain"), timeout=30)
    assert r.model.state == models_pb2.MODEL_STATE_LOADED
    assert model_status(stubs, "plain").memory_bytes > 0
    again = stubs.models.LoadModel(models_pb2.LoadModelRequest(name="plain"), timeout=30)
    assert again.model.state == models_pb2.MODEL_STATE_LOADED
    r = stubs.models.UnloadModel(models_pb2.UnloadModelRequest(name="plain"), timeout=30)
    assert r.model.state == models_pb2.MODEL_STATE_AVAILABLE
    assert model_status(stubs, "plain").state == models_pb2.MODEL_STATE_AVAILABLE


def test_a_failed_load_is_reported_and_the_daemon_keeps_serving(shared_daemon: Daemon) -> None:
    stubs = shared_daemon.stubs()
    err = rpc_error(lambda: stubs.models.LoadModel(models_pb2.LoadModelRequest(name="alien"), timeout=30))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "failed to load" in err.details()
    assert_one_line(err)
    alien = next(m for m in stubs.models.ListModels(models_pb2.ListModelsRequest(), timeout=10).models if m.name == "alien")
    assert alien.state == models_pb2.MODEL_STATE_FAILED and "failed" not in alien.problem.split()[0]
    assert alien.problem
    put_agent(stubs, "alien-user", model="alien")
    err = rpc_error(lambda: chat(stubs, "alien-user", "hello"))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert chat(stubs, "a1", "others are fine")[-1].HasField("finished")
    r = stubs.agents.PutAgent(agents_pb2.PutAgentRequest(agent=agents_pb2.Agent(name="defaulted")), timeout=10)
    assert r.agent.model != "alien", "a model that failed to load is not a default"
    for name in ("alien-user", "defaulted"):
        stubs.agents.DeleteAgent(agents_pb2.DeleteAgentRequest(name=name), timeout=10)


@pytest.mark.parametrize(
    ("name", "code", "words"),
    [
        ("nosuchmodel", grpc.StatusCode.NOT_FOUND, "no model named"),
        ("../tiny", grpc.StatusCode.INVALID_ARGUMENT, "not a path"),
        ("/etc/passwd", grpc.StatusCode.INVALID_ARGUMENT, "not a path"),
        ("", grpc.StatusCode.INVALID_ARGUMENT, "empty"),
        ("broken", grpc.StatusCode.FAILED_PRECONDITION, "not a valid GGUF"),
    ],
)
def test_bad_model_loads_are_clear_errors(shared_daemon: Daemon, name: str, code: grpc.StatusCode, words: str) -> None:
    err = rpc_error(lambda: shared_daemon.stubs().models.LoadModel(models_pb2.LoadModelRequest(name=name), timeout=30))
    assert err.code() == code
    assert words in err.details()
    assert_one_line(err)


# ---- chat --------------------------------------------------------------------------------------


def test_chat_streams_one_turn_and_keeps_the_transcript(shared_daemon: Daemon) -> None:
    stubs = shared_daemon.stubs()
    put_agent(stubs, "streamer", system="You stream.", max_tokens=40, seed=5)
    events = chat(stubs, "streamer", f"hello {MARKER}")
    k = kinds(events)
    assert k[0] == "started" and k[-1] == "finished"
    assert k[1:3] == ["phase", "phase"]
    assert [e.phase.phase for e in events[1:3]] == [chat_pb2.TURN_PHASE_PREFILL, chat_pb2.TURN_PHASE_GENERATING]
    assert "delta" in k
    assert len({e.turn_id for e in events}) == 1 and all(e.agent == "streamer" for e in events)
    assert events[0].started.model == "tiny"
    done = events[-1].finished
    assert done.finish_reason == chat_pb2.FINISH_REASON_MAX_TOKENS
    assert done.usage.completion_tokens == 40
    assert sum(e.delta.tokens for e in events if e.HasField("delta")) == 40
    assert done.usage.prompt_tokens > 5
    assert events[1].phase.prompt_tokens == 0, "the prompt's length is said once it is read"
    assert events[2].phase.prompt_tokens == done.usage.prompt_tokens
    t = done.timings
    assert t.time_to_first_token_ms > 0 and t.generation_tokens_per_second > 0 and t.prompt_tokens_per_second > 0

    transcript = stubs.agents.GetTranscript(agents_pb2.GetTranscriptRequest(name="streamer"), timeout=10).messages
    assert [m.role for m in transcript] == [agents_pb2.ROLE_SYSTEM, agents_pb2.ROLE_USER, agents_pb2.ROLE_ASSISTANT]
    assert transcript[1].content == f"hello {MARKER}"
    assert transcript[2].content == text_of(events)
    assert transcript[2].finish_reason == "max_tokens"

    second = chat(stubs, "streamer", "and then?")
    usage = second[-1].finished.usage
    assert usage.prompt_tokens > done.usage.prompt_tokens + 20, "the second turn sees the first"
    assert usage.cached_prompt_tokens > 0, "the shared history comes from the KV cache"
    assert len(stubs.agents.GetTranscript(agents_pb2.GetTranscriptRequest(name="streamer"), timeout=10).messages) == 5


def test_four_agents_generate_at_once(shared_daemon: Daemon) -> None:
    stubs = shared_daemon.stubs()
    for i in range(4):
        put_agent(stubs, f"par{i}", max_tokens=1500, seed=i)
    peak = 0
    stop = threading.Event()

    def watch_status() -> None:
        nonlocal peak
        s = shared_daemon.stubs()
        while not stop.is_set():
            peak = max(peak, model_status(s, "tiny").active_sequences)

    watcher = threading.Thread(target=watch_status)
    watcher.start()
    try:
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda i: chat(shared_daemon.stubs(), f"par{i}", f"go {i}"), range(4)))
    finally:
        stop.set()
        watcher.join()
    for events in results:
        assert events[-1].finished.usage.completion_tokens == 1500
    assert peak == 4, f"at most {peak} sequences were decoded together"
    assert model_status(stubs, "tiny").batch_occupancy > 1.5


def test_broadcast_to_all_and_to_a_chosen_set(shared_daemon: Daemon) -> None:
    stubs = shared_daemon.stubs()
    events = list(stubs.chat.Broadcast(chat_pb2.BroadcastRequest(message="all of you"), timeout=60))
    agents = {a.name for a in stubs.agents.ListAgents(agents_pb2.ListAgentsRequest(), timeout=10).agents}
    finished = {e.agent for e in events if e.HasField("finished")}
    assert finished == agents and len(agents) >= 4
    assert len({e.turn_id for e in events}) == len(agents)
    for name in agents:
        assert text_of(events, name)

    events = list(stubs.chat.Broadcast(chat_pb2.BroadcastRequest(message="two of you", agents=["a1", "a3"]), timeout=60))
    assert {e.agent for e in events} == {"a1", "a3"}
    assert sum(e.HasField("finished") for e in events) == 2


def test_broadcast_with_an_unknown_agent_starts_nothing(shared_daemon: Daemon) -> None:
    stubs = shared_daemon.stubs()
    before = stubs.agents.GetTranscript(agents_pb2.GetTranscriptRequest(name="a1"), timeout=10).messages
    err = rpc_error(lambda: stubs.chat.Broadcast(chat_pb2.BroadcastRequest(message="hi", agents=["a1", "ghost"]), timeout=30))
    assert err.code() == grpc.StatusCode.NOT_FOUND and "ghost" in err.details()
    assert stubs.agents.GetTranscript(agents_pb2.GetTranscriptRequest(name="a1"), timeout=10).messages == before


def test_a_second_client_watches_the_same_tokens(shared_daemon: Daemon) -> None:
    watcher_stubs = shared_daemon.stubs()
    watch = watcher_stubs.chat.Watch(chat_pb2.WatchRequest(agents=["a2"]), timeout=60)
    seen: list[chat_pb2.ChatEvent] = []

    def consume() -> None:
        for ev in watch:
            seen.append(ev)
            if ev.HasField("finished"):
                return

    t = threading.Thread(target=consume)
    t.start()
    time.sleep(0.3)  # let the watch attach before the turn starts
    events = chat(shared_daemon.stubs(), "a2", "watched")
    t.join(30)
    watch.cancel()
    assert seen and seen[0].HasField("started") and seen[0].started.user_message == "watched"
    assert {e.turn_id for e in seen} == {events[0].turn_id}
    assert text_of(seen) == text_of(events)
    assert seen[-1].finished == events[-1].finished


def test_a_watcher_that_attaches_mid_turn_joins_it(shared_daemon: Daemon) -> None:
    stubs = shared_daemon.stubs()
    put_agent(stubs, "long", max_tokens=100_000)
    first = stubs.chat.Watch(chat_pb2.WatchRequest(agents=["long"]), timeout=60)
    time.sleep(0.2)
    turn_id = next(iter(stubs.chat.Chat(chat_pb2.ChatRequest(agent="long", message="keep talking", detach=True), timeout=60))).turn_id
    for ev in first:  # wait until tokens flow
        if ev.HasField("delta"):
            break
    late = stubs.chat.Watch(chat_pb2.WatchRequest(), timeout=60)
    late_events = [next(late) for _ in range(3)]
    assert late_events[0].HasField("started") and late_events[0].turn_id == turn_id
    assert late_events[1].phase.phase == chat_pb2.TURN_PHASE_GENERATING
    assert late_events[1].phase.prompt_tokens > 0, "a late watcher learns the prompt's length too"
    assert late_events[2].HasField("delta") and late_events[2].delta.text, "the text so far comes first"
    stubs.chat.Cancel(chat_pb2.CancelRequest(agent="long"), timeout=10)
    rest = []
    for ev in late:
        if ev.turn_id == turn_id:
            rest.append(ev)
            if ev.HasField("finished"):
                break
    late.cancel()
    first.cancel()
    assert rest[-1].finished.finish_reason == chat_pb2.FINISH_REASON_CANCELLED
    transcript = stubs.agents.GetTranscript(agents_pb2.GetTranscriptRequest(name="long"), timeout=10).messages
    assert transcript[-1].content == text_of(late_events + rest), "late watcher saw the whole reply"
    # the conversation goes on from the cancelled reply, which its KV cells still hold
    cut = rest[-1].finished.usage
    put_agent(stubs, "long", max_tokens=4)
    usage = chat(stubs, "long", "and then?")[-1].finished.usage
    assert usage.cached_prompt_tokens >= 0.9 * (cut.prompt_tokens + cut.completion_tokens), (usage, cut)


# ---- cancel ------------------------------------------------------------------------------------


def test_cancel_by_agent_by_turn_and_all(shared_daemon: Daemon) -> None:
    stubs = shared_daemon.stubs()
    put_agent(stubs, "c1", max_tokens=100_000)
    put_agent(stubs, "c2", max_tokens=100_000)

    def start(agent: str) -> tuple[object, chat_pb2.ChatEvent]:
        call = stubs.chat.Chat(chat_pb2.ChatRequest(agent=agent, message="go on"), timeout=60)
        return call, next(call)

    call, started = start("c1")
    r = stubs.chat.Cancel(chat_pb2.CancelRequest(turn_id=started.turn_id), timeout=10)
    assert list(r.cancelled_turn_ids) == [started.turn_id]
    assert list(call)[-1].finished.finish_reason == chat_pb2.FINISH_REASON_CANCELLED

    call1, _ = start("c1")
    call2, _ = start("c2")
    r = stubs.chat.Cancel(chat_pb2.CancelRequest(all=True), timeout=10)
    assert len(r.cancelled_turn_ids) == 2
    for call in (call1, call2):
        assert list(call)[-1].finished.finish_reason == chat_pb2.FINISH_REASON_CANCELLED
    wait_for(lambda: model_status(stubs, "tiny").active_sequences == 0, what="sequences freed")


def test_cancel_errors(shared_daemon: Daemon) -> None:
    stubs = shared_daemon.stubs()
    err = rpc_error(lambda: stubs.chat.Cancel(chat_pb2.CancelRequest(turn_id="nope"), timeout=10))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    err = rpc_error(lambda: stubs.chat.Cancel(chat_pb2.CancelRequest(), timeout=10))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    err = rpc_error(lambda: stubs.chat.Cancel(chat_pb2.CancelRequest(agent="ghost"), timeout=10))
    assert err.code() == grpc.StatusCode.NOT_FOUND


def test_a_client_that_vanishes_frees_its_sequence(shared_daemon: Daemon) -> None:
    stubs = shared_daemon.stubs()
    put_agent(stubs, "vanish", max_tokens=100_000)
    script = textwrap.dedent(f"""
        import grpc, sys
        from enclave_contract.v1 import chat_pb2, chat_pb2_grpc
        stub = chat_pb2_grpc.ChatStub(grpc.insecure_channel("unix:{shared_daemon.socket}"))
        for ev in stub.Chat(chat_pb2.ChatRequest(agent="vanish", message="talk {MARKER}")):
            if ev.HasField("delta"):
                print("streaming", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "streaming"
        assert model_status(stubs, "tiny").active_sequences >= 1
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    wait_for(lambda: model_status(stubs, "tiny").active_sequences == 0, what="the vanished client's sequence to be freed")
    wait_for(lambda: status(stubs).active_turns == 0, what="the turn to end")
    transcript = stubs.agents.GetTranscript(agents_pb2.GetTranscriptRequest(name="vanish"), timeout=10).messages
    assert transcript[-1].finish_reason == "cancelled"
    events = chat(stubs, "a1", "still there?")
    assert events[-1].finished.finish_reason == chat_pb2.FINISH_REASON_MAX_TOKENS


def test_a_deadline_cancels_the_turn(shared_daemon: Daemon) -> None:
    stubs = shared_daemon.stubs()
    put_agent(stubs, "hasty", max_tokens=100_000)
    err = rpc_error(lambda: stubs.chat.Chat(chat_pb2.ChatRequest(agent="hasty", message="take your time"), timeout=1.0))
    assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    wait_for(lambda: model_status(stubs, "tiny").active_sequences == 0, what="the sequence to be freed")
    wait_for(lambda: status(stubs).active_turns == 0, what="the turn to end")
    transcript = stubs.agents.GetTranscript(agents_pb2.GetTranscriptRequest(name="hasty"), timeout=10).messages
    assert transcript[-1].finish_reason == "cancelled"


def test_detached_turn_survives_its_client(shared_daemon: Daemon) -> None:
    stubs = shared_daemon.stubs()
    put_agent(stubs, "detached", max_tokens=300)
    call = stubs.chat.Chat(chat_pb2.ChatRequest(agent="detached", message="on my own", detach=True), timeout=60)
    next(call)
    call.cancel()
    wait_for(
        lambda: any(
            a.name == "detached" and not a.busy for a in stubs.agents.ListAgents(agents_pb2.ListAgentsRequest(), timeout=10).agents
        ),
        what="turn end",
    )
    transcript = stubs.agents.GetTranscript(agents_pb2.GetTranscriptRequest(name="detached"), timeout=10).messages
    assert transcript[-1].finish_reason == "max_tokens"


# ---- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("agent", "message", "code", "words"),
    [
        ("ghost", "hi", grpc.StatusCode.NOT_FOUND, "no agent named 'ghost'"),
        ("a1", "", grpc.StatusCode.INVALID_ARGUMENT, "message is empty"),
        ("a1", "   \n\t ", grpc.StatusCode.INVALID_ARGUMENT, "message is empty"),
        ("a1", MARKER + "x" * 70_000, grpc.StatusCode.INVALID_ARGUMENT, "over the 65536-byte limit"),
    ],
)
def test_bad_chat_requests(shared_daemon: Daemon, agent: str, message: str, code: grpc.StatusCode, words: str) -> None:
    err = rpc_error(lambda: chat(shared_daemon.stubs(), agent, message))
    assert err.code() == code
    assert words in err.details()
    assert_one_line(err)


def test_prompt_longer_than_the_context(shared_daemon: Daemon) -> None:
    stubs = shared_daemon.stubs()
    put_agent(stubs, "cramped", model="small")
    err = rpc_error(lambda: chat(stubs, "cramped", (MARKER + " ") * 300))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "context holds 256" in err.details()
    assert_one_line(err)
    assert chat(stubs, "cramped", "short")[-1].HasField("finished"), "the agent still works"


def test_old_turns_are_dropped_when_the_context_fills(shared_daemon: Daemon) -> None:
    stubs = shared_daemon.stubs()
    put_agent(stubs, "forgetful", model="small", system="Keep this.", max_tokens=60)
    truncated = []
    for i in range(8):
        events = chat(stubs, "forgetful", f"message number {i}")
        assert events[-1].HasField("finished")
        truncated += [e.truncated for e in events if e.HasField("truncated")]
    assert truncated, "a HistoryTruncated event once the history outgrew 256 tokens"
    assert all(t.dropped_messages >= 2 and t.prompt_tokens < 256 for t in truncated)


def test_a_trimmed_conversation_keeps_room_for_a_reply_of_max_tokens(shared_daemon: Daemon) -> None:
    stubs = shared_daemon.stubs()
    put_agent(stubs, "roomy", model="small", max_tokens=100)  # over a quarter of the 256-token context
    for i in range(5):
        done = chat(stubs, "roomy", f"message number {i}")[-1].finished
        assert done.finish_reason == chat_pb2.FINISH_REASON_MAX_TOKENS, (i, done)
        assert done.usage.prompt_tokens + 100 <= 256


def test_agent_validation(shared_daemon: Daemon) -> None:
    stubs = shared_daemon.stubs()
    cases = [
        (agents_pb2.Agent(name="x", model="tiny", sampling=agents_pb2.SamplingParams(temperature=9)), grpc.StatusCode.INVALID_ARGUMENT),
        (agents_pb2.Agent(name="bad name!", model="tiny"), grpc.StatusCode.INVALID_ARGUMENT),
        (agents_pb2.Agent(name="", model="tiny"), grpc.StatusCode.INVALID_ARGUMENT),
        (agents_pb2.Agent(name="x", model="ghost"), grpc.StatusCode.NOT_FOUND),
        (agents_pb2.Agent(name="x", model="tiny", sampling=agents_pb2.SamplingParams(max_tokens=0)), grpc.StatusCode.INVALID_ARGUMENT),
    ]
    for agent, code in cases:
        err = rpc_error(lambda agent=agent: stubs.agents.PutAgent(agents_pb2.PutAgentRequest(agent=agent), timeout=10))
        assert err.code() == code, agent
        assert_one_line(err)


def test_agent_lifecycle(shared_daemon: Daemon) -> None:
    stubs = shared_daemon.stubs()
    watch = shared_daemon.stubs().chat.Watch(chat_pb2.WatchRequest(), timeout=60)
    changes: list[tuple[int, str]] = []

    def follow_changes() -> None:
        for ev in watch:
            if ev.HasField("agent_changed") and ev.agent == "temp":
                assert not ev.turn_id
                changes.append((ev.agent_changed.change, ev.agent_changed.agent.system))
                if ev.agent_changed.change == chat_pb2.AgentChanged.CHANGE_DELETED:
                    return

    follower = threading.Thread(target=follow_changes)
    follower.start()
    time.sleep(0.3)  # let the watch attach
    r = stubs.agents.PutAgent(agents_pb2.PutAgentRequest(agent=agents_pb2.Agent(name="temp", system="v1")), timeout=10)
    listed = {m.name for m in stubs.models.ListModels(models_pb2.ListModelsRequest(), timeout=10).models}
    assert r.created and r.agent.model in listed  # no model given: the first usable one
    r = stubs.agents.PutAgent(agents_pb2.PutAgentRequest(agent=agents_pb2.Agent(name="temp", model="tiny", system="v2")), timeout=10)
    assert not r.created and r.agent.system == "v2" and r.agent.model == "tiny"
    chat(stubs, "temp", "remember me")
    r = stubs.agents.PutAgent(agents_pb2.PutAgentRequest(agent=agents_pb2.Agent(name="temp", model="tiny", system="v3")), timeout=10)
    assert r.agent.system == "v3" and r.agent.turns == 1, "an update keeps the transcript"
    assert r.agent.context_tokens > 0, "the agent says how full its context is"
    stubs.agents.ClearTranscript(agents_pb2.ClearTranscriptRequest(name="temp"), timeout=10)
    messages = stubs.agents.GetTranscript(agents_pb2.GetTranscriptRequest(name="temp"), timeout=10).messages
    assert [m.role for m in messages] == [agents_pb2.ROLE_SYSTEM]
    assert [a.context_tokens for a in stubs.agents.ListAgents(agents_pb2.ListAgentsRequest(), timeout=10).agents if a.name == "temp"] == [0]
    stubs.agents.DeleteAgent(agents_pb2.DeleteAgentRequest(name="temp"), timeout=10)
    err = rpc_error(lambda: stubs.agents.GetTranscript(agents_pb2.GetTranscriptRequest(name="temp"), timeout=10))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    follower.join(10)
    watch.cancel()
    C = chat_pb2.AgentChanged
    assert changes == [
        (C.CHANGE_CREATED, "v1"),
        (C.CHANGE_UPDATED, "v2"),
        (C.CHANGE_UPDATED, "v3"),
        (C.CHANGE_CLEARED, "v3"),
        (C.CHANGE_DELETED, "v3"),
    ], "every watching client hears of each change"


def test_busy_model_cannot_be_unloaded_and_busy_agent_cannot_be_cleared(shared_daemon: Daemon) -> None:
    stubs = shared_daemon.stubs()
    put_agent(stubs, "busy", max_tokens=100_000)
    call = stubs.chat.Chat(chat_pb2.ChatRequest(agent="busy", message="stay busy"), timeout=60)
    next(call)
    err = rpc_error(lambda: stubs.models.UnloadModel(models_pb2.UnloadModelRequest(name="tiny"), timeout=10))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and "in flight" in err.details()
    err = rpc_error(lambda: stubs.agents.ClearTranscript(agents_pb2.ClearTranscriptRequest(name="busy"), timeout=10))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    call.cancel()
    wait_for(lambda: model_status(stubs, "tiny").active_sequences == 0, what="cancel on client cancel")


def test_end_of_generation_through_the_daemon(shared_daemon: Daemon) -> None:
    stubs = shared_daemon.stubs()
    put_agent(stubs, "quiet", model="eos")
    events = chat(stubs, "quiet", "say nothing")
    assert events[-1].finished.finish_reason == chat_pb2.FINISH_REASON_END_OF_TURN
    assert events[-1].finished.usage.completion_tokens == 0


def test_status_stream(shared_daemon: Daemon) -> None:
    stubs = shared_daemon.stubs()
    t0 = time.monotonic()
    snaps = []
    for snap in stubs.status.Status(status_pb2.StatusRequest(interval_seconds=0.1), timeout=30):
        snaps.append(snap)
        if len(snaps) == 3:
            break
    assert time.monotonic() - t0 >= 0.2
    s = snaps[-1]
    assert s.version and s.uptime_seconds > 0 and s.agents >= 4
    tiny = next(m for m in s.models if m.name == "tiny")
    assert tiny.state == models_pb2.MODEL_STATE_LOADED
    assert tiny.context_size == 4096 and tiny.sequence_slots == 4 and tiny.quantization == "F16"
    assert tiny.memory_bytes > tiny.size_bytes > 0 and tiny.tokens_generated > 0


def test_daemon_log_never_holds_prompt_text(shared_daemon: Daemon) -> None:
    """Runs last in this module: every test above sent the marker in some message."""
    assert MARKER not in shared_daemon.log
    assert "Traceback" not in shared_daemon.log
