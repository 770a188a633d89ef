"""enclaved's OpenAI-compatible HTTP API against its gRPC API and llama-server, in one run.

    python bench/bench_http.py [--llama-server BIN] [--model models/smollm2.gguf] [--tokens 128] [--reps 9]

enclaved runs with ``[http]`` listening on 127.0.0.1 and an API key made with ``enclave keys
create``; requests are streamed with plain httpx (SSE) to enclaved and to llama-server alike.
(a) one stream through ``/v1/chat/completions`` vs the same through gRPC ``Chat`` (an agent with
    the same system prompt and sampling, its transcript cleared before each turn): generation
    tok/s from the first token to the last;
(b) the same request to llama-server's own ``/v1/chat/completions`` (``-np 1``, same threads);
(c) 4 clients at once: enclaved (``n_seq_max = 4``) vs llama-server ``-np 4``, aggregate tok/s;
(d) first-token time over HTTP vs over gRPC (p50; the difference is HTTP's overhead).
Every request has a system prompt no earlier one had (no prompt cache on either side); replies
are ``--tokens`` long at most, temperature 0, seed 1, the same sampler chain on both servers.
The sides are measured back to back, their order rotating each round. ``BIN``: llama-server
of the same llama.cpp (``../shared/anchors/build-llama-server.sh``); without it (b) and (c)
are left out. Prints a Markdown report; copy it into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import httpx
from bench_daemon import ROOT, DaemonRun, machine
from httpstream import LlamaServer, Turn, at_once, diffs_ms, free_port, grpc_chat, med, paired, same_text, sse_chat, wait_http

SYSTEM = "You are a helpful assistant."
MESSAGE = "Write a short story about a lighthouse keeper who finds a message in a bottle."
# enclaved's default sampler chain, spelled out for llama-server (whose defaults differ)
CHAIN = {"top_k": 40, "top_p": 0.95, "min_p": 0.05, "repeat_penalty": 1.1, "repeat_last_n": 64}
CLIENTS = 4


class HttpDaemon:
    """enclaved with ``[http]`` on a loopback port, an API key, and ``slots`` sequences."""

    def __init__(self, model: Path, threads: int, slots: int) -> None:
        self.port = free_port()
        self.run = DaemonRun(model, threads, slots, config=f'\n[http]\nsocket = ""\nlisten = "127.0.0.1:{self.port}"\nmetrics = false\n')
        self.url = f"http://127.0.0.1:{self.port}/v1/chat/completions"
        wait_http(f"http://127.0.0.1:{self.port}/health", self.run.proc, "enclaved's HTTP API")
        made = subprocess.run(
            [sys.executable, "-m", "enclave.cli", "--socket", str(self.run.socket), "keys", "create", "bench"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if made.returncode != 0:
            raise SystemExit(f"enclave keys create failed: {made.stderr.strip()}")
        self.headers = {"Authorization": f"Bearer {made.stdout.strip()}"}

    def close(self) -> None:
        self.run.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "smollm2.gguf")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=9, help="rounds of (a), (b), (d); (c) has half as many")
    ap.add_argument("--llama-server", type=Path, help="llama-server binary to measure beside enclaved")
    args = ap.parse_args()
    if not args.model.exists():
        raise SystemExit(f"missing {args.model}: run `make models`")
    n, name = args.tokens, args.model.stem
    numbers = iter(range(1000, 10_000))

    def messages() -> list[dict[str, str]]:
        # a new prefix every time: nobody starts from a prompt cached in an earlier request
        return [{"role": "system", "content": f"Request {next(numbers)}. {SYSTEM}"}, {"role": "user", "content": MESSAGE}]

    def body(msgs: list[dict[str, str]], chain: bool) -> dict[str, Any]:
        return {"model": name, "messages": msgs, "max_tokens": n, "temperature": 0.0, "seed": 1, **(CHAIN if chain else {})}

    # ---- (a), (b), (d): one stream, one slot each ----
    single: dict[str, list[Turn]] = {"grpc": [], "http": [], "server": []}
    daemon = HttpDaemon(args.model, args.threads, 1)
    server = LlamaServer(args.llama_server, args.model, args.threads, 1) if args.llama_server else None
    ours, theirs = httpx.Client(), httpx.Client()
    try:

        def via_grpc() -> Turn:
            system = messages()[0]["content"]
            daemon.run.agent("single", n, 1, system, temperature=0.0)  # PutAgent and ClearTranscript: a fresh conversation
            return grpc_chat(daemon.run.chat, "single", MESSAGE)

        # the HTTP request and llama-server's get the same messages: their replies can be compared
        shared: list[list[dict[str, str]]] = []
        sides: dict[str, Callable[[], Turn]] = {
            "grpc": via_grpc,
            "http": lambda: sse_chat(ours, daemon.url, body(shared[-1], False), daemon.headers),
        }
        if server:
            theirs_url = f"{server.v1}/chat/completions"
            sides["server"] = lambda: sse_chat(theirs, theirs_url, body(shared[-1], True))
        for rep in range(-1, args.reps):  # round -1 loads the model and warms up
            shared.append(messages())
            order = list(sides)
            k = rep % len(order)
            for side in order[k:] + order[:k]:
                turn = sides[side]()
                if rep >= 0:
                    single[side].append(turn)
    finally:
        ours.close()
        theirs.close()
        daemon.close()
        if server:
            server.close()

    # ---- (c): four clients at once ----
    crowd: dict[str, list[float]] = {"http": [], "server": []}
    if args.llama_server:
        daemon = HttpDaemon(args.model, args.threads, CLIENTS)
        server = LlamaServer(args.llama_server, args.model, args.threads, CLIENTS)
        clients = {side: [httpx.Client() for _ in range(CLIENTS)] for side in crowd}
        try:
            urls = {"http": (daemon.url, daemon.headers, False), "server": (f"{server.v1}/chat/completions", {}, True)}

            def request(side: str) -> Callable[[int], list[Turn]]:
                url, headers, chain = urls[side]
                return lambda i: [sse_chat(clients[side][i], url, body(messages(), chain), headers)]

            for rep in range(-1, max(3, args.reps // 2)):
                for side in list(crowd) if rep % 2 == 0 else list(crowd)[::-1]:
                    rate = at_once(request(side), CLIENTS)[0]
                    if rep >= 0:
                        crowd[side].append(rate)
        finally:
            for cs in clients.values():
                for c in cs:
                    c.close()
            daemon.close()
            server.close()

    report(args, single, crowd)


def report(args: argparse.Namespace, single: dict[str, list[Turn]], crowd: dict[str, list[float]]) -> None:
    server = bool(single["server"])

    def rates(side: str) -> list[float]:
        return [t.rate for t in single[side]]

    def firsts(side: str) -> float:
        return med(t.first for t in single[side]) * 1000

    def verdict(ok: bool) -> str:
        return "met" if ok else "**not met**"

    print(f"## enclaved's HTTP API vs gRPC and llama-server ({date.today().isoformat()})\n")
    print(
        f"Machine: {machine()}. Model: `{args.model.name}` ({args.model.stat().st_size / 2**20:.0f} MiB). {args.threads} thread{'s' if args.threads != 1 else ''}, "
        f"replies of at most {args.tokens} tokens (temperature 0, seed 1, the same sampler chain), every request a system prompt "
        "no earlier one had. Clients: httpx streaming SSE over loopback TCP for enclaved's `[http]` and llama-server alike, "
        "grpcio over the Unix socket. Rates: generated tokens after the first over the time from the first token to the last, "
        "as the client sees them; first token: from sending the request. Values are medians; ratios are medians of per-round "
        f"ratios of sides measured back to back in rotating order ({len(single['grpc'])} rounds"
        + (f"; {len(crowd['http'])} for (c))." if crowd["http"] else ").")
        + "\n"
    )
    cols = ["enclaved gRPC `Chat`", "enclaved `/v1/chat/completions`"] + (
        ["llama-server `/v1/chat/completions` (`-np 1`)"] if server else []
    )
    print("| one stream | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    sides = ["grpc", "http"] + (["server"] if server else [])
    print("| generation tok/s | " + " | ".join(f"{med(rates(s)):.1f}" for s in sides) + " |")
    print("| first token, ms (p50) | " + " | ".join(f"{firsts(s):.1f}" for s in sides) + " |")
    print(
        "| completion / prompt tokens | "
        + " | ".join(f"{med(t.tokens for t in single[s]):.0f} / {med(t.prompt_tokens for t in single[s]):.0f}" for s in sides)
        + " |"
    )
    if server:
        print(
            f"\nSame reply text from enclaved's HTTP API and llama-server (same messages): {same_text(single['http'], single['server'])} rounds."
        )
    print()
    print("| measure | result | target | |")
    print("|---|---|---|---|")
    a = paired(rates("http"), rates("grpc"))
    print(f"| (a) one stream, HTTP / gRPC | {a:.3f}× | ≥ 0.97× | {verdict(a >= 0.97)} |")
    if server:
        b = paired(rates("http"), rates("server"))
        print(f"| (b) one stream, enclaved HTTP / llama-server | {b:.3f}× | ≥ 1.0× | {verdict(b >= 1.0)} |")
    if crowd["http"]:
        c = paired(crowd["http"], crowd["server"])
        print(
            f"| (c) {CLIENTS} clients at once, enclaved HTTP / llama-server `-np {CLIENTS}` "
            f"({med(crowd['http']):.1f} / {med(crowd['server']):.1f} aggregate tok/s) | {c:.3f}× | ≥ 1.0× | {verdict(c >= 1.0)} |"
        )
    d = diffs_ms(single["http"], single["grpc"])
    print(f"| (d) first token, HTTP − gRPC, p50 of per-round differences | {d:+.1f} ms | ≤ 5 ms | {verdict(d <= 5)} |")
    if crowd["http"]:
        print(
            f"\n(c) aggregate: all completion tokens over the time from sending the {CLIENTS} requests to the last token; "
            f"enclaved with `n_seq_max = {CLIENTS}`, llama-server with `-np {CLIENTS} -c {2048 * CLIENTS}` (2,048 tokens a sequence on both)."
        )


if __name__ == "__main__":
    main()
