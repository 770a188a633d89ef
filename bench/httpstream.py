"""Shared by bench/bench_http.py and bench/bench_remote.py: one streamed turn, timed the same
way whichever side serves it (an OpenAI-compatible ``/v1/chat/completions`` read with httpx, or
enclaved's gRPC ``Chat``), and llama.cpp's C++ ``llama-server`` started on a free loopback port.

A turn's rate is its generated tokens after the first over the time from its first token to its
last, as the client sees them; its first token is timed from the moment the request is sent.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from enclave_contract.v1 import chat_pb2, chat_pb2_grpc

med = statistics.median


@dataclass
class Turn:
    first: float  # seconds from sending the request to the first token
    last: float  # seconds from sending the request to the last token
    tokens: int  # completion tokens, as the server counts them
    prompt_tokens: int
    text: str
    replica: str = ""  # the URL that served it (enclaved's ModelServed), when a remote engine did

    @property
    def rate(self) -> float:
        """Generation tok/s from the first token to the last."""
        return (self.tokens - 1) / (self.last - self.first) if self.last > self.first and self.tokens > 1 else 0.0


def sse_chat(client: httpx.Client, url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> Turn:
    """One streamed ``/v1/chat/completions`` (``body`` gets ``stream`` and usage added)."""
    body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    first = last = 0.0
    tokens = prompt = 0
    parts: list[str] = []
    t0 = time.perf_counter()
    with client.stream("POST", url, json=body, headers=headers, timeout=600) as r:
        if r.status_code != 200:
            r.read()
            raise SystemExit(f"{url} answered {r.status_code}: {r.text[:300]}")
        for line in r.iter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            chunk = json.loads(data)
            if chunk.get("error"):
                raise SystemExit(f"{url} sent an error: {chunk['error']}")
            for choice in chunk.get("choices") or []:
                piece = (choice.get("delta") or {}).get("content") or ""
                if piece:
                    last = time.perf_counter() - t0
                    first = first or last
                    parts.append(piece)
            if chunk.get("usage"):
                tokens, prompt = chunk["usage"]["completion_tokens"], chunk["usage"]["prompt_tokens"]
    return Turn(first, last, tokens, prompt, "".join(parts))


def grpc_chat(chat: chat_pb2_grpc.ChatStub, agent: str, message: str) -> Turn:
    """One turn through enclaved's gRPC ``Chat``."""
    first = last = 0.0
    tokens = prompt = 0
    parts: list[str] = []
    replica = ""
    t0 = time.perf_counter()
    for ev in chat.Chat(chat_pb2.ChatRequest(agent=agent, message=message), timeout=600):
        if ev.HasField("delta"):
            last = time.perf_counter() - t0
            first = first or last
            parts.append(ev.delta.text)
        elif ev.HasField("served"):
            replica = ev.served.replica
        elif ev.HasField("finished"):
            tokens, prompt = ev.finished.usage.completion_tokens, ev.finished.usage.prompt_tokens
        elif ev.HasField("error"):
            raise SystemExit(f"agent {agent}: {ev.error.message}")
    return Turn(first, last, tokens, prompt, "".join(parts), replica)


def at_once(request: Callable[[int], Sequence[Turn]], n: int) -> tuple[float, list[Turn]]:
    """Run ``request(0..n-1)`` in n threads at once: (aggregate generated tok/s from the first
    request sent to the last token, every turn)."""
    results: list[Sequence[Turn]] = [[] for _ in range(n)]
    failures: list[BaseException] = []

    def one(i: int) -> None:
        try:
            results[i] = request(i)
        except BaseException as exc:  # re-raised in the caller's thread
            failures.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if failures:
        raise failures[0]
    turns = [turn for result in results for turn in result]
    return sum(t.tokens for t in turns) / elapsed, turns


def free_port() -> int:
    """A free port below the ephemeral range: a port the kernel hands out (``bind(0)``) may be
    one that a test on this machine picked as "nothing listens there", and its daemon would
    then reach our servers."""
    for port in range(18740, 19740):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise SystemExit("no free port in 18740-19739")


def wait_http(url: str, proc: subprocess.Popen[bytes], what: str, seconds: float = 120) -> None:
    """Until ``url`` answers 200 (or ``proc`` exits)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{what} did not answer {url}")


class LlamaServer:
    """llama.cpp's own server on 127.0.0.1: ``slots`` slots of ``n_ctx`` tokens each, ``threads``
    threads for generation and prompts, the model named ``alias``."""

    def __init__(self, binary: Path, model: Path, threads: int, slots: int, n_ctx: int = 2048, alias: str = "smollm2") -> None:
        self.port = free_port()
        args = ["-m", str(model), "-a", alias, "-c", str(n_ctx * slots), "-np", str(slots), "-t", str(threads), "-tb", str(threads)]
        env = {**os.environ, "LD_LIBRARY_PATH": ":".join(p for p in (str(binary.parent), os.environ.get("LD_LIBRARY_PATH")) if p)}
        self.proc = subprocess.Popen(
            [str(binary), *args, "--host", "127.0.0.1", "--port", str(self.port), "--no-webui"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        wait_http(f"{self.base}/health", self.proc, "llama-server")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def v1(self) -> str:
        return f"{self.base}/v1"

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def paired(a: Sequence[float], b: Sequence[float]) -> float:
    """Median of per-run ratios: each pair was measured back to back, so drift cancels."""
    return med(x / y for x, y in zip(a, b) if y)


def diffs_ms(a: Sequence[Turn], b: Sequence[Turn]) -> float:
    """Median of the per-pair differences of first-token times, in ms."""
    return med((x.first - y.first) * 1000 for x, y in zip(a, b))


def same_text(a: Sequence[Turn], b: Sequence[Turn]) -> str:
    """How many pairs produced the same reply, e.g. '7/7'."""
    return f"{sum(x.text == y.text for x, y in zip(a, b))}/{len(a)}"
