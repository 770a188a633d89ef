"""The official ``openai`` client, sync and async, streaming and not, over loopback TCP and
over the Unix socket (an httpx transport), against the real enclaved on SmolLM2."""

from __future__ import annotations

import pytest

from tests.http.conftest import Http

pytestmark = pytest.mark.timeout(300)
HI = [{"role": "user", "content": "Name three colours."}]


def test_models_lists_the_models_and_the_agents(http: Http) -> None:
    assert oct(http.uds.stat().st_mode & 0o777) == "0o600", "the HTTP socket is private, like the gRPC one"
    for client in (http.tcp(), http.unix()):
        ids = [m.id for m in client.models.list()]
        assert {"smollm2", "gemma3", "agent:helper"} <= set(ids), ids


def test_chat_without_streaming_over_tcp_and_the_unix_socket(http: Http) -> None:
    answers = []
    for client in (http.tcp(), http.unix()):
        r = client.chat.completions.create(model="smollm2", messages=HI, max_tokens=8, temperature=0)
        (choice,) = r.choices
        assert choice.message.role == "assistant" and choice.message.content
        assert choice.finish_reason == "length" and r.usage is not None
        assert r.usage.completion_tokens == 8 and r.usage.prompt_tokens > 8
        assert r.usage.total_tokens == r.usage.prompt_tokens + 8
        assert r.object == "chat.completion" and r.model == "smollm2" and r.id.startswith("chatcmpl-")
        answers.append((choice.message.content, r.usage.prompt_tokens_details))
    (first, _), (second, details) = answers
    assert first == second, "temperature 0 gives the same answer on both listeners"
    assert details is not None and details.cached_tokens > 0, "the second request found its prompt in the KV cache"


def test_streaming_chat_matches_the_whole_answer_and_sends_usage_only_when_asked(http: Http) -> None:
    client = http.unix()
    whole = client.chat.completions.create(model="smollm2", messages=HI, max_tokens=12, temperature=0, seed=7)
    chunks = list(
        client.chat.completions.create(
            model="smollm2", messages=HI, max_tokens=12, temperature=0, seed=7, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    *body, last = chunks
    assert last.choices == [] and last.usage is not None and last.usage.completion_tokens == 12
    assert all(c.usage is None for c in body), "usage only in the last chunk"

    plain = list(http.tcp().chat.completions.create(model="smollm2", messages=HI, max_tokens=4, stream=True))
    assert plain and all(c.usage is None and c.choices for c in plain), "no usage chunk unless asked"


def test_an_agent_answers_with_its_own_settings_and_ends_on_its_own(http: Http) -> None:
    r = http.tcp().chat.completions.create(model="agent:helper", messages=[{"role": "user", "content": "What is the capital of France?"}])
    assert r.choices[0].finish_reason == "stop", r.choices[0].message.content
    assert "Paris" in (r.choices[0].message.content or "")
    assert r.usage is not None and r.usage.completion_tokens < 96


def test_a_stop_string_ends_the_reply_before_it(http: Http) -> None:
    client = http.tcp()
    full = client.chat.completions.create(model="smollm2", messages=HI, max_tokens=24, temperature=0).choices[0].message.content or ""
    words = full.split()
    assert len(words) > 3, full
    stop = words[len(words) // 2]
    r = client.chat.completions.create(model="smollm2", messages=HI, max_tokens=24, temperature=0, stop=[stop])
    assert r.choices[0].finish_reason == "stop"
    assert r.choices[0].message.content == full[: full.index(stop)]


def test_completions_stream_and_not(http: Http) -> None:
    client = http.unix()
    r = client.completions.create(model="smollm2", prompt="The sky is", max_tokens=6, temperature=0)
    assert r.object == "text_completion" and r.choices[0].text and r.choices[0].finish_reason == "length"
    assert r.usage is not None and r.usage.completion_tokens == 6
    streamed = list(client.completions.create(model="smollm2", prompt="The sky is", max_tokens=6, temperature=0, stream=True))
    assert "".join(c.choices[0].text for c in streamed) == r.choices[0].text
    assert streamed[-1].choices[0].finish_reason == "length"


async def test_the_async_client_over_the_unix_socket(http: Http) -> None:
    client = http.unix_async()
    try:
        r = await client.chat.completions.create(model="smollm2", messages=HI, max_tokens=5, temperature=0)
        assert r.usage is not None and r.usage.completion_tokens == 5
        stream = await client.chat.completions.create(
            model="smollm2", messages=HI, max_tokens=5, temperature=0, stream=True, stream_options={"include_usage": True}
        )
        chunks = [c async for c in stream]
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == r.choices[0].message.content
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5
    finally:
        await client.close()
