"""Agents on remote engines, against real llama-cpp-python servers (one on 127.0.0.1, one on a
Unix socket) and a fault proxy in front of the first: streaming over gRPC, replicas, the
deadlines, retries before the first token only, the breaker, fallbacks and the audit log."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest

from enclave_contract.v1 import agents_pb2, chat_pb2, models_pb2, status_pb2
from tests.engines.conftest import Servers, free_port
from tests.helpers import MARKER, REAL_MODELS, Daemon, chat, enclave, short_tmpdir, start_daemon, wait_for

FAST = {"connect_timeout": '"1s"', "first_token_timeout": '"30s"', "idle_timeout": '"2s"', "backoff": '"50ms"', "health_interval": '"1s"'}


def config(s: Servers) -> str:
    proxy = f'["http://127.0.0.1:{s.proxy.port}/v1"]'
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    engines: dict[str, dict[str, str]] = {
        "pair": {"urls": f'["{s.tcp_url}", "unix:{s.uds}"]'},
        "faulty": {"urls": proxy, "retries": "2"},
        "stalled": {"urls": proxy, "retries": "0", "first_token_timeout": '"1s"'},
        "held": {"urls": proxy, "retries": "0", "idle_timeout": '"60s"'},
        "timed": {"urls": proxy, "retries": "0", "idle_timeout": '"1500ms"', "total_timeout": '"3s"'},
        "brk": {"urls": proxy, "retries": "0", "breaker": '{ failures = 2, cooldown = "2s" }'},
        "dead": {"urls": f'["{dead}"]', "retries": "1"},
        "half": {"urls": f'["{dead}", "{s.tcp_url}"]', "retries": "2"},
        "capped": {"urls": proxy, "retries": "10", "retry_time": '"500ms"', "backoff": '"200ms"'},
        "discover": {"urls": f'["{s.tcp_url}"]'},  # no models listed: /v1/models says
        "ctx": {"urls": f'["{s.tcp_url}"]', "context": "512"},  # the server's n_ctx: its /v1/models does not say
        "guess": {"urls": proxy, "retries": "0", "context": "512"},
        "tls": {"urls": f'["https://127.0.0.1:{s.tcp_port}/v1"]', "retries": "1"},  # the server speaks plain HTTP
        "mtls": {
            "urls": f'["https://127.0.0.1:{s.tls_proxy.port}/v1"]',
            "tls": f'{{ ca_file = "{s.certs.ca}", cert_file = "{s.certs.client_cert}", key_file = "{s.certs.client_key}" }}',
        },
        "nocert": {"urls": f'["https://127.0.0.1:{s.tls_proxy.port}/v1"]', "retries": "0", "tls": f'{{ ca_file = "{s.certs.ca}" }}'},
    }
    text = ""
    for name, table in engines.items():
        text += f'[[engines]]\nname = "{name}"\n' + ('models = ["smollm2"]\n' if name != "discover" else "")
        text += "".join(f"{k} = {v}\n" for k, v in {**FAST, **table}.items()) + "\n"
    agents = {
        "pair": ("smollm2@pair", "[]"),
        "pair2": ("smollm2@pair", "[]"),
        "pair3": ("smollm2@pair", "[]"),
        "pair4": ("smollm2@pair", "[]"),
        "faulty": ("smollm2@faulty", "[]"),
        "timed": ("smollm2@timed", "[]"),
        "brk": ("smollm2@brk", "[]"),
        "half": ("smollm2@half", "[]"),
        "chain": ("smollm2@dead", '["smollm2@brk", "smollm2"]'),
        "to-remote": ("smollm2@dead", '["smollm2@pair"]'),
        "stalled": ("smollm2@stalled", "[]"),
        "held": ("smollm2@held", "[]"),
        "stranded": ("smollm2@dead", '["smollm2@stalled"]'),
        "unloadable": ("nosuch", '["smollm2@pair"]'),
        "tls": ("smollm2@tls", "[]"),
        "mtls": ("smollm2@mtls", "[]"),
        "local": ("smollm2", "[]"),
        "nocert": ("smollm2@nocert", "[]"),
        "capped": ("smollm2@capped", "[]"),
        "discovering": ("smollm2@discover", "[]"),
        "long": ("smollm2@ctx", "[]"),
        "guessing": ("smollm2@guess", "[]"),
    }
    for name, (model, fallbacks) in agents.items():
        text += f'[[agents]]\nname = "{name}"\nmodel = "{model}"\nfallbacks = {fallbacks}\nmax_tokens = {24 if name.startswith("pair") else 8}\n\n'
    return text + '[[models]]\nname = "smollm2"\nn_ctx = 512\nn_seq_max = 2\nn_threads = 1\n'


@pytest.fixture(scope="module")
def daemon(servers: Servers) -> Iterator[Daemon]:
    d = start_daemon(short_tmpdir(), REAL_MODELS, config(servers))
    yield d
    assert d.stop() == 0
    assert "Traceback" not in d.log and MARKER not in d.log  # every fault ended in one line
    assert "HTTP Request" not in d.log  # not a line per request or probe


@pytest.fixture(autouse=True)
def clean_proxy(servers: Servers) -> None:
    servers.proxy.plan()


@dataclass
class Turn:
    events: list[chat_pb2.ChatEvent]
    code: grpc.StatusCode | None = None  # how the stream ended, when not OK
    error: str = ""


def turn(d: Daemon, agent: str, message: str = "Hi.") -> Turn:
    """A Chat call's events, and how it ended: a turn that fails ends the stream with its status."""
    events: list[chat_pb2.ChatEvent] = []
    try:
        for ev in d.stubs().chat.Chat(chat_pb2.ChatRequest(agent=agent, message=message), timeout=90):
            events.append(ev)
    except grpc.RpcError as exc:
        return Turn(events, exc.code(), exc.details() or "")
    return Turn(events)


def kinds(events: list[chat_pb2.ChatEvent]) -> list[str]:
    return [str(e.WhichOneof("kind")) for e in events]


def text(events: list[chat_pb2.ChatEvent]) -> str:
    return "".join(e.delta.text for e in events if e.HasField("delta"))


def served(events: list[chat_pb2.ChatEvent]) -> chat_pb2.ModelServed:
    (one,) = [e.served for e in events if e.HasField("served")]
    return one


def audit(d: Daemon, turn: str) -> list[dict]:
    r = enclave(d, "audit", "tail", "-n", "200", "--action", "chat.*")
    assert r.returncode == 0, r.stderr
    return [rec for rec in map(json.loads, r.stdout.splitlines()) if rec.get("turn") == turn]


def test_a_remote_agent_streams_over_grpc_and_the_audit_names_the_engine(daemon: Daemon, servers: Servers) -> None:
    events = chat(daemon.stubs(), "pair", f"Say hello. {MARKER}")
    assert kinds(events)[0] == "started" and kinds(events)[-1] == "finished", kinds(events)
    assert text(events)
    s = served(events)
    assert (s.model, s.engine, s.reason) == ("smollm2@pair", "pair", "")
    assert s.replica in (servers.tcp_url, f"unix:{servers.uds}")
    finished = events[-1].finished
    assert finished.usage.completion_tokens >= 1 and finished.timings.time_to_first_token_ms > 0
    (done,) = [r for r in audit(daemon, events[0].turn_id) if r["action"] == "chat.completion"]
    assert done["model"] == "smollm2@pair"
    assert done["payload"]["served_by"]["engine"] == "pair" and done["payload"]["served_by"]["replica"] == s.replica
    assert MARKER not in daemon.log


def test_two_replicas_one_on_a_unix_socket_share_concurrent_turns(daemon: Daemon, servers: Servers) -> None:
    stubs = daemon.stubs()
    agents = ("pair", "pair2", "pair3", "pair4")
    streams = [stubs.chat.Chat(chat_pb2.ChatRequest(agent=a, message="Count to ten."), timeout=90) for a in agents]
    replicas = {served(list(s)).replica for s in streams}
    assert replicas == {servers.tcp_url, f"unix:{servers.uds}"}


def test_a_remote_model_shows_in_list_models_and_status_with_its_replicas(daemon: Daemon, servers: Servers) -> None:
    chat(daemon.stubs(), "pair", "Hi.")
    models = {m.name: m for m in daemon.stubs().models.ListModels(models_pb2.ListModelsRequest(), timeout=10).models}
    pair = models["smollm2@pair"]
    assert pair.engine == "pair" and pair.state == models_pb2.MODEL_STATE_LOADED
    assert {r.url for r in pair.replicas} == {servers.tcp_url, f"unix:{servers.uds}"}
    assert all(r.healthy and r.circuit == "closed" for r in pair.replicas)
    assert any(r.latency_p50_ms > 0 and r.latency_p95_ms >= r.latency_p50_ms for r in pair.replicas)
    assert "smollm2" in models and models["smollm2"].engine == ""  # the local GGUF beside it
    (snap,) = daemon.stubs().status.Status(status_pb2.StatusRequest(once=True), timeout=10)
    status = {m.name: m for m in snap.models}
    assert status["smollm2@pair"].engine == "pair" and len(status["smollm2@pair"].replicas) == 2
    listed = enclave(daemon, "models")
    assert listed.returncode == 0 and f"smollm2@pair replica unix:{servers.uds}: healthy, circuit closed" in listed.stdout
    shown = enclave(daemon, "status")
    assert shown.returncode == 0 and f"smollm2@pair replica {servers.tcp_url}: healthy, circuit closed" in shown.stdout


def test_a_dead_replica_is_skipped_for_the_live_one(daemon: Daemon, servers: Servers) -> None:
    events = chat(daemon.stubs(), "half", "Hi.")
    assert kinds(events)[-1] == "finished" and served(events).replica == servers.tcp_url
    wait_for(lambda: "unhealthy" in daemon.log, timeout=10)


def test_5xx_429_garbage_and_error_objects_before_the_first_token_are_retried(daemon: Daemon, servers: Servers) -> None:
    for fault in ("status:500", "status:503", "status:429:0", "garbage", "error", "status:502"):
        servers.proxy.plan(fault)
        before = servers.proxy.posts
        events = chat(daemon.stubs(), "faulty", "Hi.")
        assert kinds(events)[-1] == "finished", (fault, events[-1])
        assert servers.proxy.posts - before == 2, fault  # the fault, then the retry that served


@pytest.mark.parametrize(("code", "says"), [(400, "rejected the request"), (401, "api_key_file"), (404, "has no model")])
def test_400_401_404_are_never_retried(daemon: Daemon, servers: Servers, code: int, says: str) -> None:
    servers.proxy.plan(f"status:{code}", "pass")
    before = servers.proxy.posts
    t = turn(daemon, "faulty")
    assert t.code == grpc.StatusCode.UNAVAILABLE
    assert says in t.error and "\n" not in t.error
    assert servers.proxy.posts - before == 1


def test_retries_stop_at_their_count_with_one_line(daemon: Daemon, servers: Servers) -> None:
    servers.proxy.plan("status:500", "status:500", "status:500", "pass")
    before = servers.proxy.posts
    t = turn(daemon, "faulty")
    assert servers.proxy.posts - before == 3  # one try and two retries
    assert "gave up after 3 attempt(s)" in t.error


def test_retry_after_is_honoured_and_retries_stop_at_retry_time(daemon: Daemon, servers: Servers) -> None:
    servers.proxy.plan("status:429:1")
    assert kinds(turn(daemon, "faulty").events)[-1] == "finished"
    assert "answered HTTP 429; retrying in 1.00 s" in daemon.log
    servers.proxy.plan(*["status:503"] * 11)
    before = servers.proxy.posts
    t = turn(daemon, "capped")  # 10 retries allowed, but none starts 0.5 s after the turn was sent
    assert t.code == grpc.StatusCode.UNAVAILABLE and "gave up after" in t.error
    assert 1 <= servers.proxy.posts - before <= 3  # the time cap, well before the count cap (11)


def test_models_are_discovered_from_v1_models_when_the_block_lists_none(daemon: Daemon) -> None:
    def listed() -> bool:
        models = daemon.stubs().models.ListModels(models_pb2.ListModelsRequest(), timeout=10).models
        return "smollm2@discover" in {m.name for m in models}

    wait_for(listed, timeout=15)
    assert served(chat(daemon.stubs(), "discovering", "Hi.")).engine == "discover"


def test_first_token_timeout(daemon: Daemon, servers: Servers) -> None:
    servers.proxy.plan("stall")
    assert "first_token_timeout" in turn(daemon, "stalled").error
    wait_for(lambda: servers.proxy.client_gone >= 1, timeout=10)


def test_a_stream_that_stalls_after_the_first_token_ends_with_its_partial_text_kept_and_no_retry(daemon: Daemon, servers: Servers) -> None:
    servers.proxy.plan("stall-mid", "pass")
    before = servers.proxy.posts
    t = turn(daemon, "faulty", "Tell me a long story.")
    assert servers.proxy.posts - before == 1  # never retried after the first token
    partial = text(t.events)
    assert partial and t.code == grpc.StatusCode.UNAVAILABLE
    assert "idle_timeout" in t.error and "interrupted" in t.error
    transcript = daemon.stubs().agents.GetTranscript(agents_pb2.GetTranscriptRequest(name="faulty"), timeout=10).messages
    assert transcript[-1].content == partial and transcript[-1].finish_reason == "interrupted"


def test_a_stream_dropped_mid_reply_ends_with_a_clear_error(daemon: Daemon, servers: Servers) -> None:
    servers.proxy.plan("drop-mid", "pass")
    before = servers.proxy.posts
    t = turn(daemon, "faulty", "Tell me a story.")
    assert servers.proxy.posts - before == 1
    assert text(t.events) and "broke" in t.error


def test_total_timeout(daemon: Daemon, servers: Servers) -> None:
    servers.proxy.plan("slow")  # an event every 0.4 s or so: within idle_timeout (1.5 s), past total_timeout (3 s)
    t = turn(daemon, "timed", "Tell me a long story.")
    assert "total_timeout" in t.error and text(t.events)


def test_the_breaker_opens_after_its_failures_and_closes_after_a_good_probe(daemon: Daemon, servers: Servers) -> None:
    servers.proxy.plan("status:500", "status:500")
    for _ in range(2):
        assert "HTTP 500" in turn(daemon, "brk").error
    before = servers.proxy.posts
    refused = turn(daemon, "brk").error
    assert "circuit" in refused and "open" in refused and servers.proxy.posts == before  # not even tried
    models = {m.name: m for m in daemon.stubs().models.ListModels(models_pb2.ListModelsRequest(), timeout=10).models}
    assert models["smollm2@brk"].replicas[0].circuit == "open" and models["smollm2@brk"].state == models_pb2.MODEL_STATE_FAILED
    wait_for(lambda: "closed → open" in daemon.log)
    wait_for(
        lambda: (
            daemon.stubs().models.ListModels(models_pb2.ListModelsRequest(), timeout=10).models is not None
            and _circuit(daemon, "brk") == "half-open"
        ),
        timeout=10,
    )
    events = chat(daemon.stubs(), "brk", "Hi.")
    assert kinds(events)[-1] == "finished"
    assert _circuit(daemon, "brk") == "closed"
    assert "half-open → closed" in daemon.log


def _circuit(d: Daemon, engine: str) -> str:
    models = {m.name: m for m in d.stubs().models.ListModels(models_pb2.ListModelsRequest(), timeout=10).models}
    return models[f"smollm2@{engine}"].replicas[0].circuit


def test_the_fallback_chain_ends_on_a_local_model_and_the_audit_says_so(daemon: Daemon, servers: Servers) -> None:
    servers.proxy.plan("status:500", "status:500", "status:500")
    events = chat(daemon.stubs(), "chain", "Hi.")
    assert kinds(events)[-1] == "finished" and text(events)
    s = served(events)
    assert s.model == "smollm2" and s.engine == ""
    assert "smollm2@dead" in s.reason and "smollm2@brk" in s.reason
    (done,) = [r for r in audit(daemon, events[0].turn_id) if r["action"] == "chat.completion"]
    assert done["model"] == "smollm2" and done["payload"]["served_by"]["engine"] == "local"


def test_a_fallback_on_another_engine_is_named_in_the_stream_and_the_audit(daemon: Daemon, servers: Servers) -> None:
    events = chat(daemon.stubs(), "to-remote", "Hi.")
    s = served(events)
    assert s.engine == "pair" and "cannot connect" in s.reason
    (done,) = [r for r in audit(daemon, events[0].turn_id) if r["action"] == "chat.completion"]
    assert done["payload"]["served_by"]["engine"] == "pair"


def test_with_no_fallback_left_the_turn_is_unavailable_naming_what_was_tried(daemon: Daemon, servers: Servers) -> None:
    servers.proxy.plan("status:401")
    t = turn(daemon, "stranded")
    assert t.code == grpc.StatusCode.UNAVAILABLE
    assert t.error.startswith("no model could serve the turn; tried smollm2@dead") and "smollm2@stalled" in t.error


def test_cancel_closes_the_remote_stream_at_once(daemon: Daemon, servers: Servers) -> None:
    stubs = daemon.stubs()
    servers.proxy.plan("stall-mid")  # the proxy holds the stream open after two text chunks
    before = servers.proxy.client_gone
    stream = stubs.chat.Chat(chat_pb2.ChatRequest(agent="held", message="Tell me a long story."), timeout=60)
    deltas = 0
    for ev in stream:
        deltas += ev.HasField("delta")
        if deltas == 2:
            (snap,) = stubs.status.Status(status_pb2.StatusRequest(once=True), timeout=10)
            (held,) = [m for m in snap.models if m.name == "smollm2@held"]
            assert held.active_sequences == 1 and held.replicas[0].in_flight >= 1  # the proxy's URL: shared by engines
            stubs.chat.Cancel(chat_pb2.CancelRequest(agent="held"), timeout=10)
            break
    rest = list(stream)
    assert rest[-1].finished.finish_reason == chat_pb2.FINISH_REASON_CANCELLED
    # closed by the cancel, not by idle_timeout (60 s): the engine's slot is free again
    wait_for(lambda: servers.proxy.client_gone == before + 1, timeout=10)


def test_a_missing_local_model_falls_back_to_a_remote_one(daemon: Daemon) -> None:
    events = chat(daemon.stubs(), "unloadable", "Hi.")
    s = served(events)
    assert s.engine == "pair" and "nosuch: no model named 'nosuch'" in s.reason


def test_agents_made_at_run_time_can_use_a_remote_model(daemon: Daemon) -> None:
    stubs = daemon.stubs()
    spec = agents_pb2.Agent(name="late", model="smollm2@pair", sampling=agents_pb2.SamplingParams(max_tokens=4))
    stubs.agents.PutAgent(agents_pb2.PutAgentRequest(agent=spec), timeout=10)
    assert served(chat(stubs, "late", "Hi.")).engine == "pair"
    with pytest.raises(grpc.RpcError) as caught:
        spec = agents_pb2.Agent(name="later", model="smollm2@nowhere")
        stubs.agents.PutAgent(agents_pb2.PutAgentRequest(agent=spec), timeout=10)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND and "no engine named 'nowhere'" in (caught.value.details() or "")


def test_a_tls_failure_is_a_connection_failure_in_one_line(daemon: Daemon) -> None:
    t = turn(daemon, "tls")
    assert t.code == grpc.StatusCode.UNAVAILABLE
    assert t.error.startswith("engine tls: cannot connect to https://127.0.0.1:") and t.error.endswith("gave up after 2 attempt(s)")
    assert "Traceback" not in daemon.log


def test_a_turn_cancelled_as_soon_as_it_starts_ends_cancelled(daemon: Daemon, servers: Servers) -> None:
    """Wherever the cancel finds it (waiting for its agent, just submitted, waiting for the
    engine's headers), the turn ends CANCELLED and nothing waits for the stalled engine."""
    stubs = daemon.stubs()
    for _ in range(3):
        servers.proxy.plan("stall")
        stream = stubs.chat.Chat(chat_pb2.ChatRequest(agent="held", message="Hi."), timeout=30)
        assert next(stream).HasField("started")
        stubs.chat.Cancel(chat_pb2.CancelRequest(agent="held"), timeout=10)
        assert list(stream)[-1].finished.finish_reason == chat_pb2.FINISH_REASON_CANCELLED


def test_remote_models_are_not_loaded_or_unloaded_by_enclave(daemon: Daemon) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        daemon.stubs().models.LoadModel(models_pb2.LoadModelRequest(name="smollm2@pair"), timeout=10)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "runs on engine pair" in (caught.value.details() or "")


def test_mutual_tls_with_the_configured_ca_and_client_certificate(daemon: Daemon, servers: Servers) -> None:
    events = chat(daemon.stubs(), "mtls", "Hi.")
    assert kinds(events)[-1] == "finished" and served(events).replica == f"https://127.0.0.1:{servers.tls_proxy.port}/v1"
    t = turn(daemon, "nocert")  # the server asks for a client certificate this engine does not have
    assert t.code == grpc.StatusCode.UNAVAILABLE and t.error.startswith("engine nocert")


def test_a_broadcast_mixes_local_and_remote_agents_and_a_stalled_engine_holds_up_no_local_turn(daemon: Daemon, servers: Servers) -> None:
    stubs = daemon.stubs()
    servers.proxy.plan("stall")  # the next remote request hangs before its first token
    held = stubs.chat.Chat(chat_pb2.ChatRequest(agent="held", message="Hi."), timeout=60)
    assert next(held).HasField("started")
    events = list(stubs.chat.Broadcast(chat_pb2.BroadcastRequest(message="Hi.", agents=["local", "pair3"]), timeout=90))
    assert {e.agent for e in events if e.HasField("finished")} == {"local", "pair3"}
    assert not any(e.HasField("served") for e in events if e.agent == "local")  # a local model serving its own agent: nothing to say
    stubs.chat.Cancel(chat_pb2.CancelRequest(agent="held"), timeout=10)
    assert list(held)[-1].finished.finish_reason == chat_pb2.FINISH_REASON_CANCELLED


def test_fallbacks_set_over_grpc_serve_the_turn_and_are_checked(daemon: Daemon) -> None:
    stubs = daemon.stubs()
    spec = agents_pb2.Agent(
        name="put-chain", model="smollm2@dead", fallbacks=["smollm2@pair"], sampling=agents_pb2.SamplingParams(max_tokens=4)
    )
    assert list(stubs.agents.PutAgent(agents_pb2.PutAgentRequest(agent=spec), timeout=10).agent.fallbacks) == ["smollm2@pair"]
    listed = {a.name: a for a in stubs.agents.ListAgents(agents_pb2.ListAgentsRequest(), timeout=10).agents}
    assert list(listed["put-chain"].fallbacks) == ["smollm2@pair"] and list(listed["chain"].fallbacks) == ["smollm2@brk", "smollm2"]
    s = served(chat(stubs, "put-chain", "Hi."))
    assert s.engine == "pair" and "smollm2@dead" in s.reason
    for fallbacks, says in (
        (["smollm2@nowhere"], "fallbacks: no engine named 'nowhere'"),
        (["smollm2@dead"], "fallbacks: 'smollm2@dead' is the agent's own model"),
        (["smollm2", "smollm2"], "fallbacks: 'smollm2' is named twice"),
    ):
        bad = agents_pb2.Agent(name="put-chain", model="smollm2@dead", fallbacks=fallbacks)
        with pytest.raises(grpc.RpcError) as caught:
            stubs.agents.PutAgent(agents_pb2.PutAgentRequest(agent=bad), timeout=10)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and (caught.value.details() or "").startswith(says)


def test_a_long_conversation_with_a_remote_agent_leaves_its_oldest_messages_out(daemon: Daemon, servers: Servers) -> None:
    """The server's context holds 512 tokens; four messages of some 170 tokens each outgrow
    it (without trimming, that server's stream ends with no reply). The engine counts the tokens."""
    paragraph = "The quick brown fox jumps over the lazy dog by the river bank. " * 12
    trimmed, dropped = [], []
    for i in range(4):
        t = turn(daemon, "long", f"{i}. {paragraph}")
        assert t.code is None and kinds(t.events)[-1] == "finished", t.error
        trimmed += [e.truncated for e in t.events if e.HasField("truncated")]
        dropped.append(sum(e.truncated.dropped_messages for e in t.events if e.HasField("truncated")))
        assert t.events[-1].finished.usage.prompt_tokens < 512
    assert trimmed, "the history outgrew the context and nothing was left out"
    assert all(tr.dropped_messages % 2 == 0 and 0 < tr.prompt_tokens <= 512 for tr in trimmed)
    transcript = daemon.stubs().agents.GetTranscript(agents_pb2.GetTranscriptRequest(name="long"), timeout=10).messages
    assert len(transcript) == 8  # left out of the prompt, not of the transcript
    assert [m.dropped_messages for m in transcript[1::2]] == dropped, "each reply keeps how many its prompt left out"
    assert "engine ctx counts tokens at /extras/tokenize/count" in daemon.log


def test_without_a_tokenize_endpoint_the_tokens_are_estimated_and_the_history_still_trimmed(daemon: Daemon, servers: Servers) -> None:
    """The proxy answers 404 to both tokenize endpoints: the engine has none, its tokens are
    estimated (characters / 3, more than SmolLM2's real count here) and it is not asked again."""
    paragraph = "The quick brown fox jumps over the lazy dog by the river bank. " * 12  # over 504 bytes: the count is needed
    servers.proxy.plan("status:404", "status:404")  # /extras/tokenize/count, /tokenize; then the chat passes
    before = servers.proxy.posts
    first = turn(daemon, "guessing", f"0. {paragraph}")
    assert first.code is None and not any(e.HasField("truncated") for e in first.events), first.error
    assert servers.proxy.posts - before == 3
    assert "engine guess has no tokenize endpoint; enclave estimates its tokens (characters / 3)" in daemon.log
    second = turn(daemon, "guessing", f"1. {paragraph}")
    assert second.code is None and servers.proxy.posts - before == 4, second.error  # the chat alone
    (trimmed,) = [e.truncated for e in second.events if e.HasField("truncated")]
    assert trimmed.dropped_messages == 2 and trimmed.prompt_tokens >= len(paragraph) // 3
