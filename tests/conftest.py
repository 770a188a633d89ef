"""Shared fixtures: models made by the project's own model maker, and real daemons.

Every daemon here is the real ``enclaved`` in a subprocess, running the real llama.cpp on
generated GGUF files, listening on a real Unix socket.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import grpc
import pytest

from enclave.v1 import agents_pb2_grpc, chat_pb2_grpc, models_pb2_grpc, status_pb2_grpc
from enclaved.modelmaker import SIZES, make_model, write_f16_model

MARKER = "ZEBRA-7731-CONFIDENTIAL"  # put in prompts; must never show up in logs or errors


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny.gguf, small.gguf (same weights, small context in configs), eos.gguf (ends at
    once), plain.gguf (no chat template), broken.gguf (not GGUF) and alien.gguf (valid GGUF
    that llama.cpp cannot load)."""
    d = tmp_path_factory.mktemp("models")
    make_model(d / "tiny.gguf", "tiny")
    shutil.copy(d / "tiny.gguf", d / "small.gguf")
    make_model(d / "eos.gguf", "tiny", eos_logit=50.0)
    write_f16_model(d / "plain.gguf", SIZES["tiny"], chat_template=None)
    (d / "broken.gguf").write_bytes(b"this is not a gguf file" * 100)
    _write_unloadable(d / "alien.gguf")
    return d


def _write_unloadable(path: Path) -> None:
    """A well-formed GGUF that llama.cpp refuses: an architecture it does not know."""
    import gguf
    import numpy as np

    w = gguf.GGUFWriter(str(path), "alienarch")
    w.add_tensor("token_embd.weight", np.zeros((8, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@dataclass
class Daemon:
    proc: subprocess.Popen[bytes]
    socket: Path
    home: Path
    log_path: Path
    channels: list[grpc.Channel] = field(default_factory=list)

    def channel(self) -> grpc.Channel:
        ch = grpc.insecure_channel(f"unix:{self.socket}")
        self.channels.append(ch)
        return ch

    def stubs(self) -> "Stubs":
        return Stubs(self.channel())

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        for ch in self.channels:
            ch.close()
        self.channels.clear()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)


class Stubs:
    def __init__(self, channel: grpc.Channel) -> None:
        self.models = models_pb2_grpc.ModelsStub(channel)
        self.agents = agents_pb2_grpc.AgentsStub(channel)
        self.chat = chat_pb2_grpc.ChatStub(channel)
        self.status = status_pb2_grpc.StatusStub(channel)


def short_tmpdir() -> Path:
    """Unix socket paths are limited to 107 bytes: keep them short."""
    return Path(tempfile.mkdtemp(prefix="enc-", dir="/tmp"))


def spawn_daemon(home: Path, models: Path, config: str | None = None, *, socket: Path | None = None) -> Daemon:
    socket = socket or home / "run" / "enclaved.sock"
    args = [sys.executable, "-m", "enclaved.cli", "--socket", str(socket), "--models", str(models), "--data", str(home / "data")]
    if config is not None:
        (home / "enclave.toml").write_text(config)
        args += ["--config", str(home / "enclave.toml")]
    log_path = home / f"enclaved-{time.monotonic_ns()}.log"
    env = {k: v for k, v in os.environ.items() if k not in ("ENCLAVE_SOCKET", "ENCLAVE_CONFIG")}
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log_path.open("wb"), env=env)
    return Daemon(proc=proc, socket=socket, home=home, log_path=log_path)


def wait_ready(d: Daemon, timeout: float = 30) -> Daemon:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if d.proc.poll() is not None:
            raise AssertionError(f"enclaved exited with {d.proc.returncode}:\n{d.log}")
        if d.socket.exists():
            with grpc.insecure_channel(f"unix:{d.socket}") as ch:
                try:
                    grpc.channel_ready_future(ch).result(timeout=1)
                    return d
                except grpc.FutureTimeoutError:
                    pass
        time.sleep(0.05)
    raise AssertionError(f"enclaved did not come up:\n{d.log}")


def start_daemon(home: Path, models: Path, config: str | None = None, **kw: object) -> Daemon:
    return wait_ready(spawn_daemon(home, models, config, **kw))  # type: ignore[arg-type]


@pytest.fixture
def daemon_factory(model_dir: Path) -> Iterator[callable]:
    started: list[Daemon] = []

    def factory(config: str | None = None, *, home: Path | None = None, wait: bool = True, **kw: object) -> Daemon:
        d = spawn_daemon(home or short_tmpdir(), model_dir, config, **kw)  # type: ignore[arg-type]
        started.append(d)
        return wait_ready(d) if wait else d

    yield factory
    for d in started:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()


SHARED_CONFIG = """
[[models]]
name = "tiny"
n_ctx = 4096
n_seq_max = 4
n_threads = 2

[[models]]
name = "small"
n_ctx = 256
n_seq_max = 2
n_threads = 1

[[agents]]
name = "a1"
model = "tiny"
system = "You are agent one."
max_tokens = 48
seed = 1

[[agents]]
name = "a2"
model = "tiny"
system = "You are agent two."
max_tokens = 48
seed = 2

[[agents]]
name = "a3"
model = "tiny"
max_tokens = 48
seed = 3

[[agents]]
name = "a4"
model = "tiny"
max_tokens = 48
seed = 4
"""


@pytest.fixture(scope="module")
def shared_daemon(model_dir: Path) -> Iterator[Daemon]:
    """One daemon for the tests that do not disturb each other."""
    d = start_daemon(short_tmpdir(), model_dir, SHARED_CONFIG)
    yield d
    d.stop()
