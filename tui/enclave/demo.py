"""``enclave demo``: a private daemon on the demo model with three agents, streaming at once.

This module runs the daemon; ``enclave.cli`` decides what to show on it: the workbench, with the
demo message sent to every agent, or (``--no-tui``) the replies printed, lines prefixed by agent
name. The demo model has random weights: the words are meaningless, the streaming, batching and
plumbing are real.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc

from enclave.client import ClientError

DEMO_MODEL = Path("models") / "demo.gguf"
DEMO_CONFIG = """\
[[models]]
name = "demo"
n_ctx = 2048
n_seq_max = 4

[[agents]]
name = "narrator"
model = "demo"
system = "You are the narrator. Describe the scene."
temperature = 0.9
max_tokens = 120

[[agents]]
name = "critic"
model = "demo"
system = "You are the critic. Find the weak points."
temperature = 0.7
max_tokens = 120

[[agents]]
name = "poet"
model = "demo"
system = "You are the poet. Answer in verse."
temperature = 1.1
max_tokens = 120
"""
DEMO_MESSAGE = "Tell us about the river at night."


def ensure_demo_model() -> Path:
    if not DEMO_MODEL.exists():
        from enclave.modelmaker import make_model

        make_model(DEMO_MODEL, "tiny")
        print(f"made the demo model {DEMO_MODEL} (random weights)", file=sys.stderr)
    return DEMO_MODEL


def wait_ready(socket_path: Path, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ClientError("the demo daemon exited at start-up; run `enclaved` by hand to see why")
        if socket_path.exists():
            with grpc.insecure_channel(f"unix:{socket_path}") as channel:
                try:
                    grpc.channel_ready_future(channel).result(timeout=1)
                    return
                except grpc.FutureTimeoutError:
                    pass
        time.sleep(0.05)
    raise ClientError(f"the demo daemon did not come up within {timeout:.0f}s")


@contextmanager
def demo_daemon() -> Iterator[Path]:
    """A private enclaved on the demo model with three agents, for as long as the block runs;
    yields its socket. What to show on it (the workbench, or the replies printed) is the
    command line's choice (``enclave demo``)."""
    ensure_demo_model()
    with tempfile.TemporaryDirectory(prefix="enclave-demo-") as tmp:
        config = Path(tmp) / "demo.toml"
        config.write_text(DEMO_CONFIG)
        socket_path = Path(tmp) / "enclaved.sock"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "enclaved.cli",
                "--config",
                str(config),
                "--socket",
                str(socket_path),
                "--models",
                str(DEMO_MODEL.parent.resolve()),
                "--data",
                str(Path(tmp) / "data"),
                "--log-level",
                "warning",
            ],
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            wait_ready(socket_path, proc)
            yield socket_path
        finally:
            proc.terminate()
            proc.wait(timeout=15)
