"""[[engines]] blocks, model@engine agents, the circuit breaker and the SSE reader: the parts
of remote engines that need no server (tests/engines runs real ones)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from enclaved.domain.config import load_config
from enclaved.engine.remote import sse
from enclaved.engine.remote.breaker import Breaker, Circuit
from enclaved.errors import ConfigError

SECRET = "sk-ZEBRA-7731-never-shown"
ENGINE = '[[engines]]\nname = "gpu"\nurls = ["http://10.0.0.5:8000/v1", "unix:/run/vllm.sock"]\n'


def load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    (tmp_path / "c.toml").write_text(text)
    return load_config(tmp_path / "c.toml")


def test_a_full_engine_block(tmp_path: Path) -> None:
    key = tmp_path / "gpu.key"
    key.write_text(SECRET + "\n")
    key.chmod(0o600)
    c = load(
        tmp_path,
        ENGINE + 'api_key_file = "gpu.key"\nmodels = ["llama-3.1-70b", "mistral-7b"]\nmax_concurrency = 32\nconnect_timeout = "2s"\n'
        'first_token_timeout = "30s"\nidle_timeout = "500ms"\ntotal_timeout = "10m"\nretries = 3\n'
        'breaker = { failures = 5, cooldown = "60s" }\ncontext = 8192\n'
        '[[agents]]\nname = "analyst"\nmodel = "llama-3.1-70b@gpu"\nfallbacks = ["mistral-7b@gpu", "smollm2"]\n',
    )
    (e,) = c.engines
    assert e.urls == ("http://10.0.0.5:8000/v1", "unix:/run/vllm.sock") and e.api_key == SECRET
    assert (e.connect_timeout, e.first_token_timeout, e.idle_timeout, e.total_timeout) == (2.0, 30.0, 0.5, 600.0)
    assert (e.retries, e.breaker_failures, e.breaker_cooldown, e.max_concurrency, e.context) == (3, 5, 60.0, 32, 8192)
    assert SECRET not in repr(e)
    assert c.agents[0].fallbacks == ("mistral-7b@gpu", "smollm2")


@pytest.mark.parametrize(
    ("block", "says"),
    [
        ('[[engines]]\nname = "gpu"\n', "[[engines]] 'gpu': urls must list"),
        (ENGINE + 'kind = "grpc"\n', "[[engines]] 'gpu': kind 'grpc' is not known"),
        (ENGINE + 'connect_timeout = "soon"\n', "[[engines]] 'gpu' connect_timeout: cannot read 'soon'"),
        (ENGINE + "retries = -1\n", "[[engines]] 'gpu' retries: must be a whole number >= 0"),
        (ENGINE + 'context = "8k"\n', "[[engines]] 'gpu' context: must be a whole number >= 64"),
        (ENGINE + "breaker = { failures = 0 }\n", "[[engines]] 'gpu' breaker.failures: must be a whole number >= 1"),
        (ENGINE + "colour = 1\n", "[[engines]] 'gpu': unknown setting 'colour'"),
        (ENGINE + 'tls = { cert_file = "c.toml" }\n', "[[engines]] 'gpu' tls: cert_file and key_file go together"),
        ('[[engines]]\nname = "gpu"\nurls = ["ftp://x/v1"]\n', "is not an http(s) URL"),
        ('[[engines]]\nname = "gpu"\nurls = ["http://user:pw@x/v1"]\n', "a URL carries no credentials; put the key in api_key_file"),
        (ENGINE + ENGINE, "[[engines]]: 'gpu' is defined twice"),
        (
            ENGINE + '[[agents]]\nname = "a"\nmodel = "m@cpu"\n',
            "[[agents]] 'a': 'm@cpu' names engine 'cpu', which no [[engines]] block defines",
        ),
        (
            ENGINE + 'models = ["x"]\n[[agents]]\nname = "a"\nmodel = "x@gpu"\nfallbacks = ["y@gpu"]\n',
            "engine 'gpu' does not list model 'y'",
        ),
        ('[[agents]]\nname = "a"\nfallbacks = "smollm2"\n', "[[agents]] #1: fallbacks must be a list"),
        ('[[agents]]\nname = "a"\nmodel = "m"\nfallbacks = ["m"]\n', "[[agents]] #1: fallbacks must name each model once, and not"),
        ('[[agents]]\nname = "a"\nfallbacks = ["m", "m"]\n', "[[agents]] #1: fallbacks must name each model once"),
    ],
)
def test_a_bad_block_is_one_line_naming_the_field(tmp_path: Path, block: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, block)
    assert says in str(caught.value) and "\n" not in str(caught.value)


def test_the_key_file_is_checked_and_the_key_never_shown(tmp_path: Path) -> None:
    key = tmp_path / "gpu.key"
    key.write_text(f"{SECRET} and more\n")
    key.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by others; chmod 600 it") as caught:
        load(tmp_path, ENGINE + 'api_key_file = "gpu.key"\n')
    key.chmod(0o600)
    with pytest.raises(ConfigError, match="must hold the key alone") as again:
        load(tmp_path, ENGINE + 'api_key_file = "gpu.key"\n')
    with pytest.raises(ConfigError, match="is not a readable file"):
        load(tmp_path, ENGINE + 'api_key_file = "missing.key"\n')
    assert SECRET not in str(caught.value) + str(again.value)


def test_the_daemon_without_engines_imports_no_http_client() -> None:
    """Every daemon module is imported (a fresh interpreter): aiohttp's client is not among
    them; it comes in only when an [[engines]] block starts a remote engine."""
    code = "import sys, enclaved.daemon, enclaved.cli; print(sorted(m for m in ('aiohttp', 'aiohttp.client', 'httpx') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_breaker_opens_after_n_failures_and_probes_once_after_the_cooldown() -> None:
    b = Breaker("engine gpu replica r model m", failures=3, cooldown=0.05)
    for _ in range(2):
        b.begin()
        b.failed()
    assert b.current() is Circuit.CLOSED and b.allows()
    b.begin()
    b.failed()
    assert b.current() is Circuit.OPEN and not b.allows()
    time.sleep(0.06)
    assert b.current() is Circuit.HALF_OPEN and b.allows()
    b.begin()
    assert not b.allows(), "one probe at a time"
    b.failed()
    assert b.current() is Circuit.OPEN, "a failed probe opens it again"
    time.sleep(0.06)
    b.begin()
    b.succeeded()
    assert b.current() is Circuit.CLOSED and b.failures == 0


def test_sse_lines() -> None:
    assert sse.parse("") is None and sse.parse(": ping") is None
    assert sse.parse("data: [DONE]") == sse.Chunk(done=True)
    chunk = sse.parse('data: {"choices": [{"delta": {"content": "Hi"}, "finish_reason": null}]}')
    assert chunk == sse.Chunk(text="Hi")
    last = sse.parse(
        'data: {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": 3}}}'
    )
    assert last is not None and (last.prompt_tokens, last.completion_tokens, last.cached_tokens) == (5, 2, 3)
    timed = sse.parse('data: {"choices": [{"delta": {}, "finish_reason": "stop"}], "timings": {"prompt_ms": 1.5, "predicted_ms": 20}}')
    assert timed is not None and (timed.finish_reason, timed.prompt_ms, timed.generation_ms) == ("stop", 1.5, 20.0)
    err = sse.parse('data: {"error": {"message": "ZEBRA prompt too long", "type": "server_error"}}')
    assert err is not None and err.error == "server_error", "the message may quote the prompt: left out"
    assert sse.parse('data: {"error": "ZEBRA"}') == sse.Chunk(error="an error object")
    for bad in ("garbage", "data: {not json", "data: [1]", 'data: {"id": 1}'):
        with pytest.raises(sse.Malformed):
            sse.parse(bad)


def test_sse_lines_are_cut_from_pieces_of_any_size() -> None:
    async def pieces(*parts: bytes) -> AsyncIterator[bytes]:
        for p in parts:
            yield p

    async def read(*parts: bytes) -> list[str]:
        return [line async for line in sse.lines(pieces(*parts))]

    body = 'data: {"a": "é"}\r\n\r\ndata: [DONE]\n\n'.encode()
    whole = asyncio.run(read(body))
    assert whole == ['data: {"a": "é"}', "", "data: [DONE]", ""]
    assert asyncio.run(read(*(body[i : i + 1] for i in range(len(body))))) == whole, "split mid-line and mid-character"
    assert asyncio.run(read(b"data: x\ndata: y")) == ["data: x", "data: y"], "a last line without its newline"
    with pytest.raises(sse.Malformed, match="a line longer than 1 MiB"):
        asyncio.run(read(*[b"x" * 65536] * 17))
