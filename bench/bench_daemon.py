"""Daemon throughput and latency against llama.cpp itself, measured in one run.

    python bench/bench_daemon.py [--model models/bench.gguf] [--tokens 128] [--threads 2]

(a) one stream through enclaved to a gRPC client vs the same llama.cpp driven in-process
    (one sequence, same sampler chain, no scheduler, no socket);
(b) aggregate generated tok/s for 1, 2, 4 and 8 concurrent agents through enclaved vs
    llama-cpp-python's high-level ``Llama`` serving the same requests one after another;
(c) time to first token over the socket vs in-process (prompt evaluation + first sample).

The model is made on first use (``enclave make-model models/bench.gguf --size 1b``). Prints a
Markdown report; copy it into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parent.parent

from enclave.v1 import agents_pb2, agents_pb2_grpc, chat_pb2, chat_pb2_grpc  # noqa: E402
from enclaved.llama import Context, ContextParams, Model, Sampler, SamplingSettings  # noqa: E402
from enclaved.modelmaker import make_model  # noqa: E402
from enclaved.prompt import build_prompt  # noqa: E402

SYSTEM = "You are a helpful assistant."
MESSAGE = "Write a short story about a lighthouse keeper who finds a message in a bottle."
REPS = 3


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), platform.processor())
    mem = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))) / 2**20
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB"


def sampling(seed: int) -> SamplingSettings:
    return SamplingSettings(seed=seed)


# ---- in-process reference -----------------------------------------------------------------------


def inprocess_stream(model: Model, prompt: list[int], n_tokens: int, threads: int, seed: int) -> tuple[float, float, int]:
    """One sequence, a plain decode loop: returns (time to first token s, generation tok/s, tokens)."""
    ctx = Context(model, ContextParams(n_ctx_seq=2048, n_seq_max=1, n_batch=512, n_threads=threads))
    sampler = Sampler(model, sampling(seed))
    buf = ctypes.create_string_buffer(256)
    try:
        t0 = time.perf_counter()
        ctx.clear_batch()
        for i, tok in enumerate(prompt):
            ctx.add(tok, i, 0, i == len(prompt) - 1)
        assert ctx.decode() == 0
        tok = sampler.sample(ctx, ctx.n_tokens - 1)
        model.piece(tok, buf)
        t_first = time.perf_counter()
        pos, produced = len(prompt), 1
        while produced < n_tokens and not model.is_eog(tok):
            ctx.clear_batch()
            ctx.add(tok, pos, 0, True)
            assert ctx.decode() == 0
            pos += 1
            tok = sampler.sample(ctx, 0)
            model.piece(tok, buf)
            produced += 1
        t_end = time.perf_counter()
        return t_first - t0, (produced - 1) / (t_end - t_first), produced
    finally:
        sampler.close()
        ctx.close()


def llama_serialized(path: Path, n_requests: int, n_tokens: int, threads: int) -> float:
    """llama-cpp-python's high-level Llama, the requests one after another: aggregate tok/s."""
    from llama_cpp import Llama

    llm = Llama(str(path), n_ctx=2048, n_threads=threads, n_threads_batch=threads, n_batch=512, verbose=False)
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": MESSAGE}]
    total, t0 = 0, time.perf_counter()
    for i in range(n_requests):
        llm.reset()
        out = llm.create_chat_completion(messages, max_tokens=n_tokens, temperature=0.8, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.1, seed=i)
        total += out["usage"]["completion_tokens"]
    elapsed = time.perf_counter() - t0
    llm.close()
    return total / elapsed


# ---- through the daemon -------------------------------------------------------------------------


class DaemonRun:
    def __init__(self, model_path: Path, threads: int, slots: int) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="enc-bench-", dir="/tmp"))
        self.socket = self.home / "enclaved.sock"
        name = model_path.stem
        (self.home / "c.toml").write_text(f'[[models]]\nname = "{name}"\nn_ctx = 2048\nn_seq_max = {slots}\nn_threads = {threads}\n')
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "enclaved.cli", "--config", str(self.home / "c.toml"), "--socket", str(self.socket),
             "--models", str(model_path.parent), "--data", str(self.home / "data"), "--log-level", "warning"],
        )
        deadline = time.monotonic() + 60
        while not self.socket.exists():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit("enclaved did not start")
            time.sleep(0.05)
        self.channel = grpc.insecure_channel(f"unix:{self.socket}")
        grpc.channel_ready_future(self.channel).result(timeout=30)
        self.chat = chat_pb2_grpc.ChatStub(self.channel)
        self.agents = agents_pb2_grpc.AgentsStub(self.channel)
        self.model = name

    def agent(self, name: str, n_tokens: int, seed: int, system: str = SYSTEM) -> None:
        spec = agents_pb2.Agent(name=name, model=self.model, system=system, sampling=agents_pb2.SamplingParams(max_tokens=n_tokens, seed=seed))
        self.agents.PutAgent(agents_pb2.PutAgentRequest(agent=spec), timeout=30)
        self.agents.ClearTranscript(agents_pb2.ClearTranscriptRequest(name=name), timeout=30)

    def stream(self, agent: str) -> tuple[float, float, int]:
        """(time to first token s, client-side generation tok/s, completion tokens)."""
        t0 = time.perf_counter()
        first = last = 0.0
        tokens = 0
        for ev in self.chat.Chat(chat_pb2.ChatRequest(agent=agent, message=MESSAGE), timeout=600):
            if ev.HasField("delta"):
                now = time.perf_counter()
                first = first or now
                last = now
            elif ev.HasField("finished"):
                tokens = ev.finished.usage.completion_tokens
        return first - t0, (tokens - 1) / (last - first) if last > first else 0.0, tokens

    def concurrent(self, n: int) -> float:
        """n agents at once: aggregate generated tok/s from first request to last token."""
        results: list[int] = [0] * n

        def one(i: int) -> None:
            results[i] = self.stream(f"c{i}")[2]

        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return sum(results) / (time.perf_counter() - t0)

    def close(self) -> None:
        self.channel.close()
        self.proc.terminate()
        self.proc.wait(timeout=60)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "bench.gguf")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--agents", default="1,2,4,8")
    args = ap.parse_args()
    if not args.model.exists():
        print(f"making {args.model} (1b, Q4_K_M; a few minutes)", file=sys.stderr)
        make_model(args.model, "1b")
    counts = [int(n) for n in args.agents.split(",")]
    n = args.tokens

    model = Model(args.model)
    daemon = DaemonRun(args.model, args.threads, max(counts))
    try:
        daemon.agent("single", n, 1)
        daemon.stream("single")  # load the model and warm up
        inproc_runs, daemon_runs = [], []
        for rep in range(REPS):
            # a new system prompt each time: neither side starts from a cached prompt
            system = f"[run {rep}] {SYSTEM}"
            prompt = build_prompt(model, system, [], MESSAGE, 2048, 0).tokens
            inproc_runs.append(inprocess_stream(model, prompt, n, args.threads, seed=rep))
            daemon.agent("single", n, rep, system)
            daemon_runs.append(daemon.stream("single"))
        in_tps = statistics.median(r[1] for r in inproc_runs)
        d_tps = statistics.median(r[1] for r in daemon_runs)
        in_ttft = statistics.median(r[0] for r in inproc_runs) * 1000
        d_ttft = statistics.median(r[0] for r in daemon_runs) * 1000

        aggregate = {}
        for c in counts:
            for i in range(c):
                daemon.agent(f"c{i}", n, 100 + i)
            aggregate[c] = daemon.concurrent(c)
    finally:
        daemon.close()
        model.close()
    serialized = {c: llama_serialized(args.model, c, n, args.threads) for c in counts}

    print(f"## Daemon vs llama.cpp ({date.today().isoformat()})\n")
    print(f"Machine: {machine()}. Model: `{args.model.name}` ({args.model.stat().st_size / 2**20:.0f} MiB, 1.1B parameters, Q4_K_M, random weights). "
          f"{args.threads} threads, {n} generated tokens per request, prompt {len(prompt)} tokens; medians of {REPS} runs.\n")
    print("| measure | in-process llama.cpp | through enclaved | ratio |")
    print("|---|---|---|---|")
    print(f"| (a) one stream, generation tok/s | {in_tps:.1f} | {d_tps:.1f} | {d_tps / in_tps:.3f} |")
    print(f"| (c) time to first token, ms | {in_ttft:.0f} | {d_ttft:.0f} | {d_ttft / in_ttft:.2f} |")
    print()
    print("| concurrent agents | enclaved aggregate tok/s | `Llama` one after another, tok/s | ratio |")
    print("|---|---|---|---|")
    for c in counts:
        print(f"| {c} | {aggregate[c]:.1f} | {serialized[c]:.1f} | {aggregate[c] / serialized[c]:.2f}x |")


if __name__ == "__main__":
    main()
