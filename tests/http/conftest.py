"""A real enclaved with ``[http]`` on the real SmolLM2 model: its HTTP API on a Unix socket
and on a loopback TCP port, and an API key made with ``enclave keys create``."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from openai import AsyncOpenAI, OpenAI

from tests.helpers import REAL_MODELS, Daemon, enclave, short_tmpdir, start_daemon

CONFIG = """
[http]
socket = "default"
listen = "127.0.0.1:{port}"
max_body_bytes = "64KiB"

[[models]]
name = "smollm2"
n_ctx = 640
n_seq_max = 2
n_threads = 2

[[agents]]
name = "helper"
model = "smollm2"
system = "You are a helpful assistant. Answer in one short sentence."
temperature = 0.0
max_tokens = 96

[[agents]]
name = "brief"
model = "smollm2"
system = "You are brief."
max_tokens = 6
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Http:
    daemon: Daemon
    port: int
    key: str

    @property
    def uds(self) -> Path:
        return self.daemon.socket.with_name("enclaved-http.sock")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def tcp(self, key: str | None = None) -> OpenAI:
        return OpenAI(base_url=f"{self.url}/v1", api_key=key or self.key, max_retries=0, timeout=120)

    def unix(self, key: str | None = None) -> OpenAI:
        client = httpx.Client(transport=httpx.HTTPTransport(uds=str(self.uds)), timeout=120)
        return OpenAI(base_url="http://enclave/v1", api_key=key or self.key, max_retries=0, http_client=client)

    def unix_async(self) -> AsyncOpenAI:
        client = httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=str(self.uds)), timeout=120)
        return AsyncOpenAI(base_url="http://enclave/v1", api_key=self.key, max_retries=0, http_client=client)

    def raw(self) -> httpx.Client:
        """Plain HTTP over the Unix socket, with the key."""
        return httpx.Client(
            transport=httpx.HTTPTransport(uds=str(self.uds)),
            base_url="http://enclave",
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=120,
        )


def start_http_daemon(models: Path = REAL_MODELS) -> Http:
    if not (models / "smollm2.gguf").exists():
        pytest.skip("the real models are missing; run `make models`")
    port = free_port()
    d = start_daemon(short_tmpdir(), models, CONFIG.format(port=port))
    made = enclave(d, "keys", "create", "tester")
    assert made.returncode == 0, made.stderr
    return Http(d, port, made.stdout.strip())


@pytest.fixture(scope="module")
def http() -> Iterator[Http]:
    h = start_http_daemon()
    yield h
    h.daemon.stop()
