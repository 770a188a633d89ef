"""Keys made and revoked, the audit records of an HTTP turn, a client that disconnects
freeing its sequence, health, and the Prometheus metrics matching the turns made (gRPC turns
counted too)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from enclave_contract.v1 import chat_pb2, keys_pb2, keys_pb2_grpc, status_pb2
from tests.helpers import chat, enclave, wait_for
from tests.http.conftest import Http

pytestmark = pytest.mark.timeout(300)


def audit(http: Http, *args: str) -> list[dict]:
    r = enclave(http.daemon, "audit", "tail", "-n", "200", *args)
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()]


def metrics(http: Http) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with http.raw() as client:
        r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
        if family.name.startswith("enclave_")
    }


def value(snapshot: dict, name: str, **labels: str) -> float:
    return snapshot.get((name, tuple(sorted({"model_name": "smollm2", "engine": "local", **labels}.items()))), 0.0)


def test_keys_are_made_listed_and_revoked_and_recorded(http: Http) -> None:
    made = enclave(http.daemon, "keys", "create", "ci-bot")
    assert made.returncode == 0 and made.stdout.strip().startswith("enc-")
    key = made.stdout.strip()
    assert key not in (http.daemon.home / "data" / "api-keys.json").read_text(), "only the hash is kept"
    assert oct((http.daemon.home / "data" / "api-keys.json").stat().st_mode & 0o777) == "0o600"
    assert [m.id for m in http.tcp(key=key).models.list()]
    listed = json.loads(enclave(http.daemon, "keys", "list", "--json").stdout)
    assert {"tester", "ci-bot"} <= {k["name"] for k in listed}
    again = enclave(http.daemon, "keys", "create", "ci-bot")
    assert again.returncode == 1 and "exists" in again.stderr
    assert enclave(http.daemon, "keys", "revoke", "ci-bot").returncode == 0
    with pytest.raises(openai.AuthenticationError):
        http.tcp(key=key).models.list()
    assert enclave(http.daemon, "keys", "revoke", "ci-bot").returncode == 1
    records = audit(http, "--action", "apikey.*")
    assert [r["action"] for r in records][-2:] == ["apikey.create", "apikey.revoke"]
    assert all(key not in json.dumps(r) for r in records)
    denied = audit(http, "--action", "access.denied")
    assert denied and denied[-1]["payload"]["via"] == "http"


def test_an_http_turn_is_audited_under_the_keys_name(http: Http) -> None:
    r = http.unix().chat.completions.create(model="agent:helper", messages=[{"role": "user", "content": "Say hello."}], max_tokens=4)
    turn = r.id.removeprefix("chatcmpl-")
    records = [x for x in audit(http, "--action", "chat.*") if x["turn"] == turn]
    assert [x["action"] for x in records] == ["chat.request", "chat.completion"]
    for x in records:
        assert x["actor"]["user"] == "tester" and x["actor"]["auth"] == "apikey"
        assert x["actor"]["uid"] == os.getuid(), "on the Unix socket the kernel says who is at the other end"
        assert x["agent"] == "helper" and x["model"] == "smollm2"
    assert json.loads(records[0]["payload"]["text"]["prompt"])[-1] == {"role": "user", "content": "Say hello."}
    assert records[1]["payload"]["text"]["completion"] == r.choices[0].message.content
    assert records[1]["payload"]["usage"]["completion_tokens"] == 4
    tcp = http.tcp().completions.create(model="smollm2", prompt="One", max_tokens=2)
    (done,) = [x for x in audit(http, "--action", "chat.completion") if x["turn"] == tcp.id.removeprefix("cmpl-")]
    assert done["actor"]["auth"] == "apikey" and done["actor"]["uid"] is None and done["agent"] is None


def _running(http: Http) -> int:
    (snap,) = http.daemon.stubs().status.Status(status_pb2.StatusRequest(once=True), timeout=10)
    return sum(m.active_sequences for m in snap.models)


def test_a_client_that_disconnects_cancels_its_turn_and_frees_the_sequence(http: Http) -> None:
    before = metrics(http)
    body = {"model": "smollm2", "messages": [{"role": "user", "content": "Write a long story."}], "max_tokens": 500, "stream": True}
    with http.raw() as client, client.stream("POST", "/v1/chat/completions", json=body) as r:
        lines: Iterator[str] = r.iter_lines()
        first = next(line for line in lines if line.startswith("data:"))
        assert json.loads(first.removeprefix("data: "))["choices"][0]["delta"]["role"] == "assistant"
        assert _running(http) == 1
    wait_for(lambda: _running(http) == 0, timeout=30)
    wait_for(
        lambda: (
            value(metrics(http), "enclave_request_success_total", finished_reason="abort")
            > value(before, "enclave_request_success_total", finished_reason="abort")
        )
    )
    (cancel,) = audit(http, "--action", "chat.cancel")[-1:]
    assert cancel["outcome"] == "cancelled" and cancel["payload"]["usage"]["completion_tokens"] < 500
    assert "Traceback" not in http.daemon.log and "Error handling request" not in http.daemon.log


def test_metrics_count_http_and_grpc_turns(http: Http) -> None:
    wait_for(lambda: _running(http) == 0, timeout=30)
    before = metrics(http)
    usages = []
    for _ in range(2):
        r = http.tcp().chat.completions.create(model="smollm2", messages=[{"role": "user", "content": "Hi"}], max_tokens=5)
        usages.append((r.usage.prompt_tokens, r.usage.completion_tokens))  # type: ignore[union-attr]
    events = chat(http.daemon.stubs(), "brief", "Name one fruit.")
    finished = events[-1].finished
    usages.append((finished.usage.prompt_tokens, finished.usage.completion_tokens))
    after = metrics(http)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("enclave_prompt_tokens_total") == sum(p for p, _ in usages)
    assert delta("enclave_generation_tokens_total") == sum(c for _, c in usages)
    assert (
        delta("enclave_request_success_total", finished_reason="length") + delta("enclave_request_success_total", finished_reason="stop")
        == 3
    )
    assert delta("enclave_request_success_total", finished_reason="length") >= 2
    for histogram in ("time_to_first_token", "e2e_request_latency", "request_queue_time"):
        assert delta(f"enclave_{histogram}_seconds_count") == 3
    assert delta("enclave_inter_token_latency_seconds_count") == sum(c - 1 for _, c in usages)
    assert value(after, "enclave_num_requests_running") == 0 and value(after, "enclave_num_requests_waiting") == 0
    assert value(after, "enclave_slots_total") == 2
    assert all(set(dict(labels)) <= {"model_name", "engine", "finished_reason", "le"} for _, labels in after), (
        "no agent, user or prompt label"
    )


def test_health_needs_no_key_and_says_serving(http: Http) -> None:
    r = httpx.get(f"{http.url}/health", timeout=10)
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_status_shows_latency_percentiles_of_the_same_turns(http: Http) -> None:
    http.tcp().chat.completions.create(model="smollm2", messages=[{"role": "user", "content": "Hi"}], max_tokens=3)
    r = enclave(http.daemon, "status", "--json")
    (model,) = [m for m in json.loads(r.stdout)["models"] if m["name"] == "smollm2"]
    for kind in ("first_token", "turn"):
        p = model[kind]
        assert 0 < p["p50_seconds"] <= p["p95_seconds"] <= p["p99_seconds"], model
    assert model["first_token"]["p99_seconds"] <= model["turn"]["p99_seconds"]
    snapshot = metrics(http)
    assert value(snapshot, "enclave_e2e_request_latency_seconds_sum") >= model["turn"]["p99_seconds"]
    text = enclave(http.daemon, "status").stdout
    assert "FIRST TOKEN p50/p95/p99" in text and "smollm2" in text.split("FIRST TOKEN")[1]


def test_clients_that_leave_at_once_leave_no_request_without_an_outcome(http: Http) -> None:
    # a reply far longer than the longest wait (SmolLM2 writes ~200 tokens a second on 2 cores)
    body = {"model": "smollm2", "messages": [{"role": "user", "content": "Write a long story."}], "max_tokens": 400}
    for wait in (0.001, 0.01, 0.05, 0.2):
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(http.uds)), timeout=wait) as client:
            with pytest.raises(httpx.TimeoutException):
                client.post("http://enclave/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {http.key}"})
    wait_for(lambda: _running(http) == 0, timeout=30)

    def open_requests() -> set[str]:
        records = audit(http, "--action", "chat.*")
        asked = {r["turn"] for r in records if r["action"] == "chat.request"}
        return asked - {r["turn"] for r in records if r["action"] != "chat.request"}

    wait_for(lambda: not open_requests(), timeout=30)
    assert "Traceback" not in http.daemon.log


def test_http_requests_and_agent_turns_share_the_engine(http: Http) -> None:
    wait_for(lambda: _running(http) == 0, timeout=30)
    body = {"model": "smollm2", "messages": [{"role": "user", "content": "Write a long story."}], "max_tokens": 400, "stream": True}
    stubs = http.daemon.stubs()
    with http.raw() as client, client.stream("POST", "/v1/chat/completions", json=body) as r:
        lines = r.iter_lines()
        next(line for line in lines if line.startswith("data:"))
        turn = stubs.chat.Chat(chat_pb2.ChatRequest(agent="helper", message="Tell me a long tale."), timeout=120)
        next(e for e in turn if e.HasField("delta"))  # the agent's turn generates meanwhile
        assert _running(http) == 2, "both sequences are in the same model's engine, decoded in the same batches"
        assert next(line for line in lines if line.startswith("data:")), "and the HTTP stream goes on"
        turn.cancel()
    wait_for(lambda: _running(http) == 0, timeout=30)


def test_keys_made_at_once_under_one_name_leave_one_valid_key(http: Http) -> None:
    stubs = keys_pb2_grpc.KeysStub(http.daemon.channel())

    def create(_: int) -> str | None:
        try:
            return stubs.CreateKey(keys_pb2.CreateKeyRequest(name="race"), timeout=30).secret
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
            return None

    with ThreadPoolExecutor(8) as pool:
        made = [k for k in pool.map(create, range(8)) if k]
    assert len(made) == 1
    assert [k.name for k in stubs.ListKeys(keys_pb2.ListKeysRequest(), timeout=10).keys].count("race") == 1
    stubs.RevokeKey(keys_pb2.RevokeKeyRequest(name="race"), timeout=10)
    with pytest.raises(openai.AuthenticationError):
        http.tcp(key=made[0]).models.list()
