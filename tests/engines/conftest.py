"""Real OpenAI-compatible servers for the remote-engine tests: llama-cpp-python's own server
on SmolLM2, once on 127.0.0.1 (``python -m llama_cpp.server``) and once on a Unix socket, plus
a fault proxy in front of the first. Started once per session: the machine has two cores.

``--interrupt_requests False``: by default that server ends a stream early (``[DONE]``, no
finish reason) whenever another request arrives, health probes included."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.engines.certs import Certs, make_certs
from tests.engines.faults import FaultProxy
from tests.helpers import REAL_MODELS, ROOT, short_tmpdir

SMOLLM2 = REAL_MODELS / "smollm2.gguf"


@dataclass
class Servers:
    tcp_port: int
    uds: Path
    tcp_log: Path
    uds_log: Path
    proxy: FaultProxy
    tls_proxy: FaultProxy  # HTTPS in front of the first server, asking for a client certificate
    certs: Certs

    @property
    def tcp_url(self) -> str:
        return f"http://127.0.0.1:{self.tcp_port}/v1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_up(proc: subprocess.Popen[bytes], client: httpx.Client, log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the llama-cpp-python server exited:\n{log.read_text()[-2000:]}")
        try:
            if client.get("/v1/models", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"the llama-cpp-python server did not come up:\n{log.read_text()[-2000:]}")


def start_llama_server(port: int, log: Path) -> subprocess.Popen[bytes]:
    """``python -m llama_cpp.server`` on SmolLM2 (alias ``smollm2``, 512 tokens of context,
    one thread) at 127.0.0.1:``port``; ``wait_up`` waits for it."""
    common = [
        "--model",
        str(SMOLLM2),
        "--model_alias",
        "smollm2",
        "--n_ctx",
        "512",
        "--n_threads",
        "1",
        "--verbose",
        "False",
        "--interrupt_requests",
        "False",
    ]
    return subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", *common, "--host", "127.0.0.1", "--port", str(port)],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def wait_up(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:
        _wait_up(proc, c, log)


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    if not SMOLLM2.exists():
        pytest.skip("models/smollm2.gguf is missing; run `make models`")
    home = short_tmpdir()
    port, uds = free_port(), home / "llama.sock"
    tcp_log, uds_log = home / "tcp.log", home / "uds.log"
    tcp = start_llama_server(port, tcp_log)
    unix = subprocess.Popen(
        [sys.executable, "-m", "tests.engines.uds_server", str(uds), str(SMOLLM2), "smollm2"],
        stdout=uds_log.open("wb"),
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    proxy = tls_proxy = None
    certs = make_certs(home)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(certs.ca))
    tls.load_cert_chain(str(certs.server_cert), str(certs.server_key))
    tls.verify_mode = ssl.CERT_REQUIRED
    try:
        wait_up(tcp, port, tcp_log)
        with httpx.Client(base_url="http://localhost", transport=httpx.HTTPTransport(uds=str(uds))) as c:
            _wait_up(unix, c, uds_log)
        proxy = FaultProxy(port).start()
        tls_proxy = FaultProxy(port, tls).start()
        yield Servers(port, uds, tcp_log, uds_log, proxy, tls_proxy, certs)
    finally:
        for p in (proxy, tls_proxy):
            if p is not None:
                p.stop()
        for server in (tcp, unix):
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
