"""The OpenAI-compatible HTTP API in front of a remote engine: ``model@engine`` is listed by
``/v1/models`` and answers ``/v1/chat/completions`` (by name or through an agent on it), with
the official ``openai`` client over the daemon's Unix socket; real llama-cpp-python servers
as the engine's replicas."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest
from openai import OpenAI

from tests.engines.conftest import Servers
from tests.helpers import REAL_MODELS, Daemon, enclave, short_tmpdir, start_daemon

pytestmark = [pytest.mark.timeout(300), pytest.mark.engines]

CONFIG = """
[http]
socket = "default"

[[engines]]
name = "pair"
urls = ["{tcp}", "unix:{uds}"]
models = ["smollm2"]

[[agents]]
name = "remote"
model = "smollm2@pair"
system = "You answer in a few words."
max_tokens = 8
"""


@pytest.fixture(scope="module")
def remote_http(servers: Servers) -> Iterator[tuple[Daemon, OpenAI]]:
    d = start_daemon(short_tmpdir(), REAL_MODELS, CONFIG.format(tcp=servers.tcp_url, uds=servers.uds))
    made = enclave(d, "keys", "create", "tester")
    assert made.returncode == 0, made.stderr
    transport = httpx.HTTPTransport(uds=str(d.socket.with_name("enclaved-http.sock")))
    client = OpenAI(
        base_url="http://enclave/v1", api_key=made.stdout.strip(), max_retries=0, http_client=httpx.Client(transport=transport, timeout=120)
    )
    yield d, client
    assert d.stop() == 0
    assert "Traceback" not in d.log


def test_a_remote_model_is_listed_and_answers_by_name_and_through_an_agent(remote_http: tuple[Daemon, OpenAI]) -> None:
    _, client = remote_http
    listed = {m.id: m.owned_by for m in client.models.list().data}
    assert listed.get("smollm2@pair") == "pair" and "agent:remote" in listed
    reply = client.chat.completions.create(model="smollm2@pair", messages=[{"role": "user", "content": "Say hi."}], max_tokens=8)
    assert reply.choices[0].message.content and reply.usage is not None and reply.usage.completion_tokens > 0
    chunks = client.chat.completions.create(
        model="agent:remote", messages=[{"role": "user", "content": "Name a colour."}], stream=True, stream_options={"include_usage": True}
    )
    text, usage = "", None
    for chunk in chunks:
        text += "".join(c.delta.content or "" for c in chunk.choices)
        usage = chunk.usage or usage
    assert text and usage is not None and usage.completion_tokens > 0


def test_what_a_remote_model_cannot_serve_over_http_is_refused_in_one_line(remote_http: tuple[Daemon, OpenAI]) -> None:
    _, client = remote_http
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nosuch@pair", messages=[{"role": "user", "content": "Hi."}], max_tokens=4)
    with pytest.raises(openai.BadRequestError, match="/v1/chat/completions"):
        client.completions.create(model="smollm2@pair", prompt="Once upon a time", max_tokens=4)


def test_remote_turns_are_counted_under_their_engine(remote_http: tuple[Daemon, OpenAI]) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    d, client = remote_http
    client.chat.completions.create(model="smollm2@pair", messages=[{"role": "user", "content": "Count me."}], max_tokens=4)
    transport = httpx.HTTPTransport(uds=str(d.socket.with_name("enclaved-http.sock")))
    with httpx.Client(transport=transport, base_url="http://enclave", headers={"Authorization": f"Bearer {client.api_key}"}) as raw:
        body = raw.get("/metrics").text
    generated = {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
        if s.name == "enclave_generation_tokens_total"
    }
    assert generated.get((("engine", "pair"), ("model_name", "smollm2")), 0) > 0, generated
