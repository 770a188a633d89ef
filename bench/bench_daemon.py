"""Daemon throughput and latency against llama.cpp itself, measured in one run.

    python bench/bench_daemon.py [--model models/bench.gguf] [--tokens 128] [--threads 2]

(a) one stream through enclaved to a gRPC client vs the same llama.cpp driven in-process
    (one sequence, same sampler chain, no scheduler, no socket);
(b) aggregate generated tok/s for 1, 2, 4 and 8 concurrent agents through enclaved vs
    llama-cpp-python's high-level ``Llama`` serving the same requests one after another;
(c) time to first token over the socket vs in-process (prompt evaluation + first sample);
(d) agents holding conversations (three turns each, every turn sees the history): enclaved
    keeps each agent's KV cache in its own sequence, ``Llama`` re-reads the history each turn;
and, with ``--llama-server BIN`` (from ``../shared/anchors/build-llama-server.sh``), the C++
llama-server of the same llama.cpp on the same requests, over loopback HTTP.

The model is made on first use (``enclave make-model models/bench.gguf --size 1b``). Prints a
Markdown report; copy it into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from datetime import date
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parent.parent

from enclave.modelmaker import make_model  # noqa: E402
from enclave_contract.v1 import agents_pb2, agents_pb2_grpc, chat_pb2, chat_pb2_grpc  # noqa: E402
from enclaved.domain.prompt import build_prompt, render  # noqa: E402
from enclaved.engine import SamplingSettings  # noqa: E402
from enclaved.llama import Context, ContextParams, Model  # noqa: E402

SYSTEM = "You are a helpful assistant."
MESSAGE = "Write a short story about a lighthouse keeper who finds a message in a bottle."
FOLLOW_UPS = ["Now tell it from the point of view of the bottle.", "Give the story a title and a moral."]
REPS = 3


def machine() -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
        platform.processor(),
    )
    mem = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))) / 2**20
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB"


def sampling(seed: int) -> SamplingSettings:
    return SamplingSettings(seed=seed)


def tokens_per_second_at_once(request: Callable[[int], int], n: int) -> float:
    """Run ``request(0..n-1)`` in n threads at once; each returns its generated tokens."""
    counts = [0] * n

    def one(i: int) -> None:
        counts[i] = request(i)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - t0)


# ---- in-process reference -----------------------------------------------------------------------


def inprocess_stream(model: Model, prompt: list[int], n_tokens: int, threads: int, seed: int) -> tuple[float, float, int]:
    """One sequence, a plain decode loop: returns (time to first token s, generation tok/s, tokens)."""
    ctx = Context(model, ContextParams(n_ctx_seq=2048, n_seq_max=1, n_batch=512, n_threads=threads))
    sampler = sampling(seed).sampler(model, prompt)  # as the engine does: the prompt seen by the penalties
    buf = ctypes.create_string_buffer(256)
    try:
        t0 = time.perf_counter()
        ctx.batch.clear()
        for i, tok in enumerate(prompt):
            ctx.batch.add(tok, i, 0, i == len(prompt) - 1)
        assert ctx.decode() == 0
        tok = sampler.sample(ctx, ctx.batch.n_tokens - 1)
        model.piece(tok, buf)
        t_first = time.perf_counter()
        pos, produced = len(prompt), 1
        while produced < n_tokens and not model.is_eog(tok):
            ctx.batch.clear()
            ctx.batch.add(tok, pos, 0, True)
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


class SerialLlama:
    """llama-cpp-python's high-level ``Llama`` serving requests one after another."""

    def __init__(self, path: Path, threads: int) -> None:
        from llama_cpp import Llama

        self.llm = Llama(str(path), n_ctx=2048, n_threads=threads, n_threads_batch=threads, n_batch=512, verbose=False)

    def run(self, systems: list[str], n_tokens: int) -> float:
        total, t0 = 0, time.perf_counter()
        for i, system in enumerate(systems):
            messages = [{"role": "system", "content": system}, {"role": "user", "content": MESSAGE}]
            out = self.llm.create_chat_completion(
                messages, max_tokens=n_tokens, temperature=0.8, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.1, seed=100 + i
            )
            total += out["usage"]["completion_tokens"]
        return total / (time.perf_counter() - t0)

    def conversations(self, systems: list[str], n_tokens: int) -> float:
        """Each agent holds a conversation; the agents take turns: aggregate tok/s."""
        histories = [[{"role": "system", "content": system}] for system in systems]
        total, t0 = 0, time.perf_counter()
        for message in [MESSAGE, *FOLLOW_UPS]:
            for i, history in enumerate(histories):
                history.append({"role": "user", "content": message})
                out = self.llm.create_chat_completion(
                    history, max_tokens=n_tokens, temperature=0.8, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.1, seed=100 + i
                )
                history.append({"role": "assistant", "content": out["choices"][0]["message"]["content"]})
                total += out["usage"]["completion_tokens"]
        return total / (time.perf_counter() - t0)

    def close(self) -> None:
        self.llm.close()


# ---- the C++ anchor ----------------------------------------------------------------------------


class LlamaServer:
    """llama.cpp's own server with the same slots, context and threads, on 127.0.0.1."""

    PORT = 18731

    def __init__(self, binary: Path, model_path: Path, threads: int, slots: int) -> None:
        self.proc = subprocess.Popen(
            [
                str(binary),
                "-m",
                str(model_path),
                "-c",
                str(2048 * slots),
                "-np",
                str(slots),
                "-t",
                str(threads),
                "-tb",
                str(threads),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.PORT),
                "--no-webui",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.PORT}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit("llama-server did not start")
            time.sleep(0.2)

    def complete(self, prompt: str, n_tokens: int, seed: int, cache: bool = False) -> dict:
        body = json.dumps(
            {
                "prompt": prompt,
                "n_predict": n_tokens,
                "temperature": 0.8,
                "top_k": 40,
                "top_p": 0.95,
                "min_p": 0.05,
                "repeat_penalty": 1.1,
                "seed": seed,
                "cache_prompt": cache,
            }
        ).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.PORT}/completion", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=600) as r:
            return json.load(r)

    def stream(self, prompt: str, n_tokens: int) -> tuple[float, float]:
        """(time to first token s, generation tok/s) as llama-server reports them."""
        t = self.complete(prompt, n_tokens, 1)["timings"]
        return t["prompt_ms"] / 1000, t["predicted_per_second"]

    def concurrent(self, prompts: list[str], n_tokens: int) -> float:
        return tokens_per_second_at_once(lambda i: self.complete(prompts[i], n_tokens, 100 + i)["tokens_predicted"], len(prompts))

    def conversations(self, systems: list[str], n_tokens: int, render: Callable[[list[dict[str, str]]], str]) -> float:
        """Each agent holds a conversation, all agents at once, with llama-server's prompt cache."""

        def converse(i: int) -> int:
            history, produced = [{"role": "system", "content": systems[i]}], 0
            for message in [MESSAGE, *FOLLOW_UPS]:
                history.append({"role": "user", "content": message})
                out = self.complete(render(history), n_tokens, 100 + i, cache=True)
                history.append({"role": "assistant", "content": out["content"]})
                produced += out["tokens_predicted"]
            return produced

        return tokens_per_second_at_once(converse, len(systems))

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


# ---- through the daemon -------------------------------------------------------------------------


class DaemonRun:
    def __init__(self, model_path: Path, threads: int, slots: int, python_path: str | None = None, config: str = "") -> None:
        """``python_path``: run the enclaved found there instead of this checkout's (another
        version, for a before/after comparison: bench/bench_compare.py). ``config``: more TOML
        for the config (``[http]``, ``[[engines]]``: bench/bench_http.py, bench/bench_remote.py)."""
        self.home = Path(tempfile.mkdtemp(prefix="enc-bench-", dir="/tmp"))
        self.socket = self.home / "enclaved.sock"
        name = model_path.stem
        (self.home / "c.toml").write_text(
            f'[[models]]\nname = "{name}"\nn_ctx = 2048\nn_seq_max = {slots}\nn_threads = {threads}\n' + config
        )
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "enclaved.cli",
                "--config",
                str(self.home / "c.toml"),
                "--socket",
                str(self.socket),
                "--models",
                str(model_path.parent),
                "--data",
                str(self.home / "data"),
                "--log-level",
                "warning",
            ],
            env={**os.environ, "PYTHONPATH": python_path} if python_path else None,
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

    def agent(
        self, name: str, n_tokens: int, seed: int, system: str = SYSTEM, temperature: float | None = None, model: str | None = None
    ) -> None:
        sampling = agents_pb2.SamplingParams(max_tokens=n_tokens, seed=seed, temperature=temperature)
        spec = agents_pb2.Agent(name=name, model=model or self.model, system=system, sampling=sampling)
        self.agents.PutAgent(agents_pb2.PutAgentRequest(agent=spec), timeout=30)
        self.agents.ClearTranscript(agents_pb2.ClearTranscriptRequest(name=name), timeout=30)

    def stream(self, agent: str, message: str = MESSAGE) -> tuple[float, float, int]:
        """(time to first token s, client-side generation tok/s, completion tokens)."""
        t0 = time.perf_counter()
        first = last = 0.0
        tokens = 0
        for ev in self.chat.Chat(chat_pb2.ChatRequest(agent=agent, message=message), timeout=600):
            if ev.HasField("delta"):
                now = time.perf_counter()
                first = first or now
                last = now
            elif ev.HasField("finished"):
                tokens = ev.finished.usage.completion_tokens
        return first - t0, (tokens - 1) / (last - first) if last > first else 0.0, tokens

    def concurrent(self, systems: list[str], n_tokens: int) -> float:
        """One agent per system prompt, all at once: aggregate generated tok/s."""
        for i, system in enumerate(systems):
            self.agent(f"c{i}", n_tokens, 100 + i, system)
        return tokens_per_second_at_once(lambda i: self.stream(f"c{i}")[2], len(systems))

    def conversations(self, systems: list[str], n_tokens: int) -> float:
        """Each agent holds a conversation (the daemon keeps it), all agents at once."""
        for i, system in enumerate(systems):
            self.agent(f"c{i}", n_tokens, 100 + i, system)
        return tokens_per_second_at_once(lambda i: sum(self.stream(f"c{i}", m)[2] for m in [MESSAGE, *FOLLOW_UPS]), len(systems))

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
    ap.add_argument("--reps", type=int, default=REPS)
    ap.add_argument("--conversation-agents", type=int, default=4, help="agents in the multi-turn scenario (0 = skip)")
    ap.add_argument("--llama-server", type=Path, help="llama-server binary to measure beside enclaved")
    args = ap.parse_args()
    if not args.model.exists():
        print(f"making {args.model} (1b, Q4_K_M; a few minutes)", file=sys.stderr)
        make_model(args.model, "1b")
    counts = [int(n) for n in args.agents.split(",")]
    n = args.tokens
    rounds = iter(range(1_000_000))

    def fresh_systems(k: int) -> list[str]:
        # a new prefix every time: nobody starts from a prompt cached in an earlier round
        r = next(rounds)
        return [f"[round {r}] You are agent {i}. {SYSTEM}" for i in range(k)]

    model = Model(args.model)
    daemon = DaemonRun(args.model, args.threads, max(counts))
    serial = SerialLlama(args.model, args.threads)
    server = LlamaServer(args.llama_server, args.model, args.threads, max(counts)) if args.llama_server else None
    single: dict[str, list[tuple[float, float]]] = {"inproc": [], "enclaved": [], "server": []}
    aggregate: dict[str, dict[int, list[float]]] = {k: {c: [] for c in counts} for k in ("enclaved", "Llama", "server")}
    talks: dict[str, list[float]] = {"enclaved": [], "Llama": [], "server": []}
    k = args.conversation_agents
    try:
        daemon.agent("single", n, 1)
        daemon.stream("single")  # load the model and warm up
        for rep in range(max(args.reps, 7)):
            system = fresh_systems(1)[0]
            prompt = build_prompt(model, system, [], MESSAGE, 2048, 0).tokens
            single["inproc"].append(inprocess_stream(model, prompt, n, args.threads, seed=rep)[:2])
            daemon.agent("single", n, rep, system)
            single["enclaved"].append(daemon.stream("single")[:2])
            if server:
                single["server"].append(server.stream(model_prompt_text(model, fresh_systems(1)[0]), n))
        for c in counts:
            for _ in range(args.reps):
                aggregate["enclaved"][c].append(daemon.concurrent(fresh_systems(c), n))
                aggregate["Llama"][c].append(serial.run(fresh_systems(c), n))
                if server:
                    prompts = [model_prompt_text(model, s) for s in fresh_systems(c)]
                    aggregate["server"][c].append(server.concurrent(prompts, n))
        for _ in range(args.reps if k else 0):
            talks["enclaved"].append(daemon.conversations(fresh_systems(k), n))
            talks["Llama"].append(serial.conversations(fresh_systems(k), n))
            if server:
                talks["server"].append(server.conversations(fresh_systems(k), n, lambda msgs: render(model, msgs)))
    finally:
        daemon.close()
        serial.close()
        if server:
            server.close()
        model.close()

    med = statistics.median

    def paired(a: list[float], b: list[float]) -> float:
        """Median of per-run ratios: each pair was measured back to back, so drift cancels."""
        return med(x / y for x, y in zip(a, b))

    in_tps, d_tps = [r[1] for r in single["inproc"]], [r[1] for r in single["enclaved"]]
    in_ttft, d_ttft = [r[0] * 1000 for r in single["inproc"]], [r[0] * 1000 for r in single["enclaved"]]
    print(f"## enclaved vs llama.cpp ({date.today().isoformat()})\n")
    print(
        f"Machine: {machine()}. Model: `{args.model.name}` ({args.model.stat().st_size / 2**20:.0f} MiB"
        f"{', 1.1B parameters, Q4_K_M, random weights' if args.model.name == 'bench.gguf' else ''}). "
        f"{args.threads} threads, {n} generated tokens per request, distinct system prompts. "
        f"Values are medians; ratios are medians of per-run ratios of runs made back to back "
        f"({len(in_tps)} runs for one stream, {args.reps} for the rest).\n"
    )
    print("| measure | in-process llama.cpp | through enclaved | ratio |" + (" llama-server | enclaved / llama-server |" if server else ""))
    print("|---|---|---|---|" + ("---|---|" if server else ""))
    s_rates = [r[1] for r in single["server"]]
    s_tps = f" {med(s_rates):.1f} | {paired(d_tps, s_rates):.3f} |" if server else ""
    s_ttft = f" {med(r[0] for r in single['server']) * 1000:.0f} (prompt only) | |" if server else ""
    print(f"| (a) one stream, generation tok/s | {med(in_tps):.1f} | {med(d_tps):.1f} | {paired(d_tps, in_tps):.3f} |{s_tps}")
    print(f"| (c) time to first token, ms | {med(in_ttft):.0f} | {med(d_ttft):.0f} | {paired(d_ttft, in_ttft):.2f} |{s_ttft}")
    print()
    head = "| concurrent agents | enclaved aggregate tok/s | `Llama` one after another, tok/s | enclaved / `Llama` |"
    print(head + (" llama-server -np N, tok/s | enclaved / llama-server |" if server else ""))
    print("|---|---|---|---|" + ("---|---|" if server else ""))

    def row(label: object, e: list[float], lib: list[float], srv: list[float]) -> str:
        extra = f" {med(srv):.1f} | {paired(e, srv):.2f} |" if server else ""
        return f"| {label} | {med(e):.1f} | {med(lib):.1f} | {paired(e, lib):.2f}x |{extra}"

    for c in counts:
        print(row(c, aggregate["enclaved"][c], aggregate["Llama"][c], aggregate["server"][c]))
    if k:
        print()
        print(f"(d) Conversations: {k} agents at once, {1 + len(FOLLOW_UPS)} turns each; every turn sees the agent's history.\n")
        print(head + (" llama-server -np N, prompt cache on, tok/s | enclaved / llama-server |" if server else ""))
        print("|---|---|---|---|" + ("---|---|" if server else ""))
        print(row(k, talks["enclaved"], talks["Llama"], talks["server"]))


def model_prompt_text(model: Model, system: str) -> str:
    return render(model, [{"role": "system", "content": system}, {"role": "user", "content": MESSAGE}])


if __name__ == "__main__":
    main()
