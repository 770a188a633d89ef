"""Every error of the HTTP API in OpenAI's shape, as the openai client and curl see it: the
right status, the client's exception class, the parameter named, and never the request's text
in the error or the daemon's log."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import openai
import pytest

from tests.helpers import MARKER
from tests.http.conftest import Http

pytestmark = pytest.mark.timeout(300)


def _shape(body: dict[str, Any]) -> dict[str, Any]:
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, body
    assert MARKER not in json.dumps(body)
    return error


def test_a_bad_or_missing_key_is_a_401(http: Http) -> None:
    for client in (http.tcp(key=f"enc-{MARKER}"), http.unix(key="nonsense")):
        with pytest.raises(openai.AuthenticationError) as caught:
            client.models.list()
        assert caught.value.status_code == 401 and caught.value.code == "invalid_api_key"
    r = subprocess.run(
        ["curl", "-s", "--unix-socket", str(http.uds), "http://enclave/v1/models"], capture_output=True, text=True, timeout=30
    )
    assert _shape(json.loads(r.stdout))["type"] == "authentication_error"


def test_an_unknown_model_or_agent_is_a_404(http: Http) -> None:
    for model in ("no-such-model", "agent:nobody", "../etc/passwd"):
        with pytest.raises(openai.NotFoundError) as caught:
            http.tcp().chat.completions.create(model=model, messages=[{"role": "user", "content": MARKER}])
        assert caught.value.status_code == 404
        _shape(caught.value.body if isinstance(caught.value.body, dict) and "error" in caught.value.body else {"error": caught.value.body})


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"temperature": 5}, "temperature"),
        ({"top_p": -1}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"seed": "x"}, "seed"),
        ({"stop": [MARKER] * 5}, "stop"),
        ({"n": 2}, "n"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "tool", "content": MARKER}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": MARKER}}]}]}, "messages[0].content[0]"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
    ],
)
def test_bad_parameters_are_a_400_naming_the_parameter(http: Http, params: dict[str, Any], param: str) -> None:
    body = {"model": "smollm2", "messages": [{"role": "user", "content": MARKER}], "max_tokens": 4, **params}
    with pytest.raises(openai.BadRequestError) as caught:
        http.unix().chat.completions.create(**body)
    assert caught.value.status_code == 400 and caught.value.param == param, caught.value.body
    assert MARKER not in str(caught.value.message)


def test_a_prompt_over_the_context_is_context_length_exceeded(http: Http) -> None:
    long = " ".join([MARKER] * 400)  # well over the 640 tokens of context
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as caught:
            r = http.tcp().chat.completions.create(model="smollm2", messages=[{"role": "user", "content": long}], stream=stream)
            list(r)  # type: ignore[arg-type]
        assert caught.value.code == "context_length_exceeded" and MARKER not in caught.value.message
    with pytest.raises(openai.BadRequestError) as caught:
        http.tcp().completions.create(model="smollm2", prompt=long)
    assert caught.value.code == "context_length_exceeded"


def test_a_body_over_the_limit_is_a_413_and_bad_json_a_400(http: Http) -> None:
    with http.raw() as client:
        big = client.post("/v1/chat/completions", content=b'{"model": "smollm2", "messages": "' + b"x" * 70_000 + b'"}')
        assert big.status_code == 413 and _shape(big.json())["code"] == "request_too_large"
        bad = client.post("/v1/chat/completions", content=f'{{"model": "{MARKER}'.encode())
        assert bad.status_code == 400 and _shape(bad.json())["param"] == "body"
        assert client.post("/v1/completions", json=[MARKER]).status_code == 400
        nowhere = client.get("/v2/nothing")
        assert nowhere.status_code == 404 and _shape(nowhere.json())["code"] == "not_found"
        wrong = client.get("/v1/chat/completions")
        assert wrong.status_code == 405 and _shape(wrong.json())
    with pytest.raises(openai.APIStatusError) as caught:
        http.unix().chat.completions.create(model="smollm2", messages=[{"role": "user", "content": "y" * 70_000}])
    assert caught.value.status_code == 413


def test_the_daemon_log_never_holds_the_requests_text(http: Http) -> None:
    http.tcp().chat.completions.create(model="smollm2", messages=[{"role": "user", "content": MARKER}], max_tokens=2)
    assert MARKER not in http.daemon.log


def curl(http: Http, path: str, body: dict[str, Any] | None = None) -> str:
    data = ["-d", json.dumps(body)] if body is not None else []
    auth = ["-H", f"Authorization: Bearer {http.key}"]
    r = subprocess.run(
        ["curl", "-sN", "--fail-with-body", "--unix-socket", str(http.uds), *auth, *data, f"http://enclave{path}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_curl_over_the_unix_socket(http: Http) -> None:
    assert "agent:helper" in [m["id"] for m in json.loads(curl(http, "/v1/models"))["data"]]
    hi = [{"role": "user", "content": "Hi"}]
    chat = json.loads(curl(http, "/v1/chat/completions", {"model": "smollm2", "messages": hi, "max_tokens": 3}))
    assert chat["choices"][0]["message"]["content"] and chat["usage"]["completion_tokens"] == 3
    done = json.loads(curl(http, "/v1/completions", {"model": "smollm2", "prompt": "Hello", "max_tokens": 3}))
    assert done["object"] == "text_completion" and done["choices"][0]["finish_reason"] == "length"
    lines = [
        line
        for line in curl(http, "/v1/chat/completions", {"model": "smollm2", "messages": hi, "max_tokens": 3, "stream": True}).splitlines()
        if line
    ]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
