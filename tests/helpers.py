"""What the tests share: real daemons in subprocesses, the CLI, waiting in the TUI, and
audit logs made fast for tests. Fixtures are in conftest.py; test modules import only this."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
from textual.pilot import Pilot

from enclave_contract.v1 import agents_pb2_grpc, chat_pb2, chat_pb2_grpc, models_pb2_grpc, status_pb2_grpc, teams_pb2_grpc
from enclaved.audit import Actor, AuditConfig, AuditLog, Entry

MARKER = "ZEBRA-7731-CONFIDENTIAL"  # put in prompts; must never show up in logs or errors
ROOT = Path(__file__).resolve().parents[1]  # the project folder
BIN = Path(sys.executable).parent  # the venv's enclave and enclaved
# The real models `make models` fetches (SmolLM2-135M-Instruct, Gemma 3 270M); `make test` needs them.
REAL_MODELS = ROOT / "models"
CRASH_SIGNALS = {signal.SIGSEGV, signal.SIGILL, signal.SIGABRT, signal.SIGBUS, signal.SIGFPE}


# ---- real daemons ---------------------------------------------------------------------------


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

    def stubs(self) -> Stubs:
        return Stubs(self.channel())

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        """Stop the daemon; one that crashed by itself before (a fatal signal) fails the test
        with the end of its log, so that a crash in llama.cpp is never mistaken for a refusal."""
        for ch in self.channels:
            ch.close()
        self.channels.clear()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        elif -self.proc.returncode in CRASH_SIGNALS:
            raise AssertionError(f"enclaved crashed ({signal.Signals(-self.proc.returncode).name}):\n{self.log[-3000:]}")
        return self.proc.wait(timeout=timeout)


class Stubs:
    def __init__(self, channel: grpc.Channel) -> None:
        self.models = models_pb2_grpc.ModelsStub(channel)
        self.agents = agents_pb2_grpc.AgentsStub(channel)
        self.chat = chat_pb2_grpc.ChatStub(channel)
        self.status = status_pb2_grpc.StatusStub(channel)
        self.teams = teams_pb2_grpc.TeamsStub(channel)


SHORT_TMPDIRS: list[Path] = []


def short_tmpdir() -> Path:
    """Unix socket paths are limited to 107 bytes: keep them short. The folders are removed
    when the session passes (tests/conftest.py) and kept, with their logs, when it fails."""
    made = Path(tempfile.mkdtemp(prefix="enc-", dir="/tmp"))
    SHORT_TMPDIRS.append(made)
    return made


def spawn_daemon(
    home: Path,
    models: Path,
    config: str | None = None,
    *,
    socket: Path | None = None,
    wrap: Sequence[str] = (),
    extra: Sequence[str] = (),
) -> Daemon:
    """``wrap``: a command that execs the daemon (``prlimit …``); ``extra``: more options."""
    socket = socket or home / "run" / "enclaved.sock"
    args = [*wrap, sys.executable, "-m", "enclaved.cli", "--socket", str(socket), "--models", str(models), "--data", str(home / "data")]
    args += extra
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


# ---- talking to a daemon ---------------------------------------------------------------------


def enclave(daemon: Daemon | None, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    socket = str(daemon.socket) if daemon else str(short_tmpdir() / "none.sock")
    return subprocess.run(
        [sys.executable, "-m", "enclave.cli", "--socket", socket, *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=90,
    )


def chat(stubs: Stubs, agent: str, message: str, **kw: object) -> list[chat_pb2.ChatEvent]:
    return list(stubs.chat.Chat(chat_pb2.ChatRequest(agent=agent, message=message, **kw), timeout=60))


# ---- the workbench -------------------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    """A process's resident memory."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def fds(pid: int) -> int:
    """A process's open file descriptors."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_for(predicate: Callable[[], bool], timeout: float = 30) -> None:
    """Poll (no timing asserted: the timeout only ends a test that hangs)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


async def wait_until(pilot: Pilot, predicate: Callable[[], bool], timeout: float = 20) -> None:
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await pilot.pause(0.05)
    raise AssertionError("timed out waiting in the TUI")


# ---- audit logs ------------------------------------------------------------------------------

ACTOR = Actor("peercred", "ann", 1000, 4242)
FAST = AuditConfig(scrypt_n=2**14)  # a passphrase key file in milliseconds, not 0.3 s


@dataclass
class Clock:
    """A settable clock for the log: records can be made years apart."""

    now: datetime = datetime(2020, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


async def fill(log: AuditLog, n: int, *, start: int = 0) -> list[int]:
    """n chat records with every header field set; returns their seqs."""
    seqs = []
    for i in range(start, start + n):
        seqs.append(
            await log.append(
                Entry(
                    "chat.completion",
                    agent=f"agent{i % 3}",
                    model="tiny",
                    turn=f"turn-{i}",
                    payload={"usage": {"completion_tokens": i}, "timings": {"ms": 1.5}},
                    text={"prompt": f"question {i}", "completion": f"answer {i}"},
                ),
                ACTOR,
            )
        )
    return seqs


async def make_log(data: Path, n: int = 20, config: AuditConfig = FAST) -> Path:
    async with await AuditLog.open(data, config=config) as log:
        await fill(log, n)
    return data


def db(data: Path) -> sqlite3.Connection:
    """A plain connection, as an attacker with the files would use."""
    return sqlite3.connect(data / "audit.db", isolation_level=None)


def files_in(data: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(data.iterdir()) if p.is_file()}
