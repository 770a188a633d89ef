"""The daemon on the real models (``make models``), measured in one run.

    python bench/bench_real.py [--llama-server BIN] [--turns 12] [--agents 16]

(a) start: reading each real model's header with enclaved's reader and with ``gguf.GGUFReader``;
    the time from starting ``enclaved`` (both real models in its folder) until ``Status``
    answers, with an empty data folder and again with the header cache it left;
(c) a conversation that runs past its context on SmolLM2 (n_ctx 1024, 12 turns, temperature
    0): first-token latency per turn through enclaved, and through llama-server's
    ``/v1/chat/completions`` with its prompt cache, the client resending the history each turn
    and dropping the oldest exchanges once the reply might not fit, as its clients do
    (``--llama-server``, from ``../shared/anchors/build-llama-server.sh``);
(d) 16 agents on 4 slots, each with a ~1,500-token history, speaking again one after another:
    first-token latency with the state cache and without it.

Prints a Markdown report; copy it into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import date
from pathlib import Path

import grpc
from bench_daemon import machine

from enclave_contract.v1 import agents_pb2, agents_pb2_grpc, chat_pb2, chat_pb2_grpc, status_pb2, status_pb2_grpc
from enclaved.domain.ggufheader import read_header

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
REAL = ("smollm2.gguf", "gemma3.gguf")
TOPICS = ["rivers", "mountains", "the sea", "forests", "deserts", "cities", "islands", "lakes", "the sky", "snow", "rain", "wind"]
N_CTX_TALK, REPLY = 1024, 96
med = statistics.median


class Daemon:
    """enclaved on a folder of links to the real models, with its own config and data folder."""

    def __init__(self, config: str, data: Path | None = None, files: tuple[str, ...] = REAL) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="enc-real-", dir="/tmp"))
        self.models = models = self.home / "models"
        models.mkdir()
        for name in files:
            (models / name).symlink_to(MODELS / name)
        (self.home / "c.toml").write_text(config)
        self.socket = self.home / "s.sock"
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "enclaved.cli", "--config", str(self.home / "c.toml"), "--socket", str(self.socket)]
            + ["--models", str(models), "--data", str(data or self.home / "data"), "--log-level", "warning"]
        )
        while not self._answers():  # until Status answers: what `enclave status` waits for
            if self.proc.poll() is not None:
                raise SystemExit("enclaved exited")
            time.sleep(0.002)
        self.answered_after = time.perf_counter() - self.started
        self.channel = grpc.insecure_channel(f"unix:{self.socket}")
        self.chat = chat_pb2_grpc.ChatStub(self.channel)
        self.agents = agents_pb2_grpc.AgentsStub(self.channel)

    def _answers(self) -> bool:
        """One try on a fresh connection, as each `enclave status` makes: a channel kept
        across tries would wait out gRPC's reconnect backoff (about a second) and measure it."""
        if not self.socket.exists():
            return False
        with grpc.insecure_channel(f"unix:{self.socket}") as channel:
            try:
                next(iter(status_pb2_grpc.StatusStub(channel).Status(status_pb2.StatusRequest(once=True), timeout=2)))
                return True
            except grpc.RpcError:
                return False

    def put(self, name: str, model: str, system: str, max_tokens: int) -> None:
        sampling = agents_pb2.SamplingParams(max_tokens=max_tokens, temperature=0.0, seed=1)
        self.agents.PutAgent(agents_pb2.PutAgentRequest(agent=agents_pb2.Agent(name=name, model=model, system=system, sampling=sampling)))

    def turn(self, agent: str, message: str) -> tuple[float, chat_pb2.TurnFinished]:
        """(first-token latency s, the finish event)."""
        t0, first = time.perf_counter(), 0.0
        finished = chat_pb2.TurnFinished()
        for ev in self.chat.Chat(chat_pb2.ChatRequest(agent=agent, message=message), timeout=600):
            if ev.HasField("delta") and not first:
                first = time.perf_counter() - t0
            elif ev.HasField("finished"):
                finished = ev.finished
        return first, finished

    def close(self) -> None:
        self.channel.close()
        self.proc.terminate()
        self.proc.wait(timeout=60)


class ChatServer:
    """llama-server on SmolLM2 with one slot of N_CTX_TALK tokens, its chat endpoint streamed."""

    PORT = 18732

    def __init__(self, binary: Path) -> None:
        args = ["-m", str(MODELS / "smollm2.gguf"), "-c", str(N_CTX_TALK), "-np", "1", "-t", "2", "-tb", "2"]
        self.proc = subprocess.Popen(
            [str(binary), *args, "--host", "127.0.0.1", "--port", str(self.PORT), "--no-webui"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.PORT}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise SystemExit("llama-server did not start")

    def turn(self, messages: list[dict[str, str]]) -> tuple[float, str, int]:
        """(first-token latency s, the reply, prompt tokens) of one streamed chat completion."""
        body = {"messages": messages, "max_tokens": REPLY, "temperature": 0.0, "seed": 1, "stream": True, "cache_prompt": True}
        body["stream_options"] = {"include_usage": True}
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.PORT}/v1/chat/completions", json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        t0, first, text, prompt = time.perf_counter(), 0.0, "", 0
        with urllib.request.urlopen(req, timeout=600) as r:
            for raw in r:
                line = raw.decode().strip()
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                for choice in chunk.get("choices", []):
                    piece = (choice.get("delta") or {}).get("content") or ""
                    if piece and not first:
                        first = time.perf_counter() - t0
                    text += piece
                if chunk.get("usage"):
                    prompt = chunk["usage"]["prompt_tokens"]
        return first, text, prompt

    def _post(self, path: str, body: dict[str, object]) -> dict[str, object]:
        req = urllib.request.Request(f"http://127.0.0.1:{self.PORT}{path}", json.dumps(body).encode(), {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            result: dict[str, object] = json.load(r)
            return result

    def count(self, messages: list[dict[str, str]]) -> int:
        """The prompt tokens of a conversation, through the server's own template."""
        prompt = self._post("/apply-template", {"messages": messages})["prompt"]
        tokens = self._post("/tokenize", {"content": prompt, "add_special": True})["tokens"]
        return len(tokens)  # type: ignore[arg-type]

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


def headers() -> list[str]:
    import gguf

    rows = ["| model | file | enclaved's header reader, ms | `gguf.GGUFReader`, ms |", "|---|---|---|---|"]
    for name in REAL:
        path = MODELS / name
        ours, theirs = [], []
        for _ in range(3):
            t = time.perf_counter()
            read_header(path)
            ours.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            gguf.GGUFReader(str(path))
            theirs.append((time.perf_counter() - t) * 1000)
        rows.append(f"| {name} | {path.stat().st_size / 2**20:.0f} MiB | {med(ours):.0f} | {med(theirs):.0f} |")
    return rows


def start() -> list[str]:
    data = Path(tempfile.mkdtemp(prefix="enc-real-data-", dir="/tmp"))
    cold = Daemon("", data)
    cold_s = cold.answered_after
    time.sleep(1)  # the discovery thread reads both headers and writes its cache
    cold.close()
    warm = Daemon("", data)
    warm_s = warm.answered_after
    warm.close()
    return [
        "| enclaved start until `Status` answers (both real models in the folder) | seconds |",
        "|---|---|",
        f"| empty data folder (no header cache) | {cold_s:.2f} |",
        f"| again, with the header cache | {warm_s:.2f} |",
    ]


def conversation(server_bin: Path | None) -> list[str]:
    config = f'[[models]]\nname = "smollm2"\nn_ctx = {N_CTX_TALK}\nn_seq_max = 1\nn_threads = 2\n'
    d = Daemon(config)
    system = "You are a friendly assistant who answers in a few sentences."
    d.put("talk", "smollm2", system, REPLY)
    ours = []
    for topic in TOPICS:
        first, fin = d.turn("talk", f"Tell me about {topic}.")
        ours.append((first, fin.usage.prompt_tokens, fin.usage.cached_prompt_tokens))
    d.close()
    theirs: list[tuple[float, int]] = []
    if server_bin:
        server = ChatServer(server_bin)
        history: list[dict[str, str]] = []
        head = [{"role": "system", "content": system}]
        for topic in TOPICS:
            history.append({"role": "user", "content": f"Tell me about {topic}."})
            # the client trims as enclaved does: the oldest exchanges go until the prompt and a
            # whole reply fit the context
            while server.count(head + history) > N_CTX_TALK - REPLY and len(history) > 2:
                del history[:2]
            first, reply, last_prompt = server.turn(head + history)
            history.append({"role": "assistant", "content": reply})
            theirs.append((first, last_prompt))
        server.close()
    rows = [
        "| turn | enclaved first token, ms | prompt / cached tokens | llama-server first token, ms | llama-server prompt tokens |",
        "|---|---|---|---|---|",
    ]
    for i, (first, prompt, cached) in enumerate(ours):
        srv = f"{theirs[i][0] * 1000:.0f} | {theirs[i][1]}" if theirs else "– | –"
        rows.append(f"| {i + 1} | {first * 1000:.0f} | {prompt} / {cached} | {srv} |")
    full = [i for i, (_, prompt, _) in enumerate(ours) if prompt > 0.6 * N_CTX_TALK]
    if theirs and full:
        ratio = med(ours[i][0] for i in full) / med(theirs[i][0] for i in full)
        rows.append(
            f"\nOnce the context is full (turns {full[0] + 1}–{len(ours)}): enclaved's median first token / llama-server's = **{ratio:.2f}**"
        )
    return rows


def many_agents(n: int) -> list[str]:
    filler = " ".join(f"Rule {i}: answer politely and keep to the facts of topic {i}." for i in range(110))
    results = {}
    for cache in ("1GiB", "0"):
        d = Daemon(f'[[models]]\nname = "smollm2"\nn_ctx = 2048\nn_seq_max = 4\nn_threads = 2\nstate_cache = "{cache}"\n')
        for i in range(n):
            d.put(f"a{i}", "smollm2", f"You are agent {i}. {filler}", 16)
            d.turn(f"a{i}", "Say hello.")
        firsts, history = [], []
        for i in range(n):
            first, fin = d.turn(f"a{i}", "Say goodbye.")
            firsts.append(first)
            history.append(fin.usage.prompt_tokens)
        results[cache] = (med(firsts), med(history))
        d.close()
    on, off = results["1GiB"], results["0"]
    return [
        f"| {n} agents on 4 slots, speaking again in turn | median first token, ms | median prompt tokens |",
        "|---|---|---|",
        f"| state cache on (1 GiB) | {on[0] * 1000:.0f} | {on[1]:.0f} |",
        f"| state cache off | {off[0] * 1000:.0f} | {off[1]:.0f} |",
        f"\nFirst token with the cache is **{off[0] / on[0]:.1f}×** sooner.",
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-server", type=Path)
    ap.add_argument("--agents", type=int, default=16)
    args = ap.parse_args()
    missing = [n for n in REAL if not (MODELS / n).exists()]
    if missing:
        raise SystemExit(f"missing {', '.join(missing)}: run `make models`")
    print(f"## enclaved on the real models ({date.today().isoformat()})\n")
    print(f"Machine: {machine()}. SmolLM2-135M-Instruct Q4_1 and Gemma 3 270M Q4_K_M, 2 threads.\n")
    print("(a) Start\n")
    print("\n".join(headers()) + "\n")
    print("\n".join(start()) + "\n")
    print(f"(c) A conversation past its context (SmolLM2, n_ctx {N_CTX_TALK}, replies up to {REPLY} tokens, temperature 0)\n")
    print("\n".join(conversation(args.llama_server)) + "\n")
    print("(d) More agents than slots\n")
    print("\n".join(many_agents(args.agents)))


if __name__ == "__main__":
    main()
