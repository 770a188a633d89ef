"""enclaved on a remote engine (llama-server over its OpenAI-compatible API), in one run.

    python bench/bench_remote.py --llama-server BIN [--model models/smollm2.gguf] [--tokens 128] [--reps 9]

(a) one stream through enclaved (gRPC ``Chat``, an agent on ``smollm2@ls``) vs the same
    llama-server read directly with httpx (streaming SSE, the very body enclaved sends):
    generation tok/s from the first token to the last;
(b) the time enclave adds to the first token: p50 of the per-round differences;
(c) 16 agents at once over two llama-server replicas (two processes, 1 thread and ``-np 8``
    each): the share of the turns each replica served, and the aggregate tok/s vs the same 16
    agents on the first replica alone. The two replicas share this machine's cores, so this
    measures the spread, not a speed-up.
Every turn has a system prompt no earlier one had (no prompt cache); replies are ``--tokens``
long at most, temperature 0, seed 1. Sides are measured back to back, their order alternating
each round. ``BIN``: llama-server of the same llama.cpp (``../shared/anchors/build-llama-server.sh``).
Prints a Markdown report; copy it into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Callable
from datetime import date
from functools import partial
from pathlib import Path

import httpx
from bench_daemon import ROOT, DaemonRun, machine
from httpstream import LlamaServer, Turn, at_once, diffs_ms, grpc_chat, med, paired, sse_chat

SYSTEM = "You are a helpful assistant."
MESSAGE = "Write a short story about a lighthouse keeper who finds a message in a bottle."
AGENTS = 16
FAST = 'connect_timeout = "2s"\nhealth_interval = "2s"\nmodels = ["smollm2"]\n'


def engines(**urls: list[str]) -> str:
    return "".join(f'\n[[engines]]\nname = "{name}"\nurls = {u!r}\n{FAST}'.replace("'", '"') for name, u in urls.items())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-server", type=Path, required=True, help="llama-server binary: the remote engine")
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "smollm2.gguf")
    ap.add_argument("--tokens", type=int, default=128, help="reply length of the single stream")
    ap.add_argument("--crowd-tokens", type=int, default=48, help="reply length of each of the 16 agents")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=9, help="rounds of (a) and (b); (c) has a third as many")
    args = ap.parse_args()
    if not args.model.exists():
        raise SystemExit(f"missing {args.model}: run `make models`")
    n = args.tokens
    numbers = iter(range(1000, 10_000))

    def system() -> str:
        return f"Request {next(numbers)}. {SYSTEM}"  # a new prefix every time: no prompt cache

    # ---- (a), (b): one stream, one llama-server with one slot ----
    single: dict[str, list[Turn]] = {"enclaved": [], "direct": []}
    server = LlamaServer(args.llama_server, args.model, args.threads, 1)
    daemon = DaemonRun(args.model, args.threads, 1, config=engines(ls=[server.v1]))
    client = httpx.Client()
    try:

        def via_enclaved() -> Turn:
            daemon.agent("single", n, 1, system(), temperature=0.0, model="smollm2@ls")  # a fresh conversation
            return grpc_chat(daemon.chat, "single", MESSAGE)

        def direct() -> Turn:  # what enclaved's remote engine sends (engine/remote/client.py)
            messages = [{"role": "system", "content": system()}, {"role": "user", "content": MESSAGE}]
            body = {"model": "smollm2", "messages": messages, "max_tokens": n, "temperature": 0.0, "top_p": 0.95, "seed": 1}
            return sse_chat(client, f"{server.v1}/chat/completions", body)

        sides: dict[str, Callable[[], Turn]] = {"enclaved": via_enclaved, "direct": direct}
        for rep in range(-1, args.reps):  # round -1 warms up both paths
            for side in list(sides) if rep % 2 == 0 else list(sides)[::-1]:
                turn = sides[side]()
                if rep >= 0:
                    single[side].append(turn)
    finally:
        client.close()
        daemon.close()
        server.close()

    # ---- (c): 16 agents over two replicas, and over the first alone ----
    replicas = [LlamaServer(args.llama_server, args.model, 1, AGENTS // 2, n_ctx=1024) for _ in range(2)]
    daemon = DaemonRun(args.model, args.threads, 1, config=engines(two=[r.v1 for r in replicas], one=[replicas[0].v1]))
    crowd: dict[str, list[float]] = {"two": [], "one": []}
    served: Counter[str] = Counter()
    try:

        def crowd_turn(engine: str, i: int) -> list[Turn]:
            return [grpc_chat(daemon.chat, f"{engine}{i}", MESSAGE)]

        for rep in range(-1, max(3, args.reps // 3)):
            for engine in list(crowd) if rep % 2 == 0 else list(crowd)[::-1]:
                for i in range(AGENTS):  # fresh conversations, new system prompts
                    daemon.agent(f"{engine}{i}", args.crowd_tokens, 1, system(), temperature=0.0, model=f"smollm2@{engine}")
                rate, turns = at_once(partial(crowd_turn, engine), AGENTS)
                if rep >= 0:
                    crowd[engine].append(rate)
                    if engine == "two":
                        served.update(t.replica for t in turns)
    finally:
        daemon.close()
        for r in replicas:
            r.close()

    report(args, single, crowd, served, [r.v1 for r in replicas])


def report(
    args: argparse.Namespace, single: dict[str, list[Turn]], crowd: dict[str, list[float]], served: Counter[str], urls: list[str]
) -> None:
    def verdict(ok: bool) -> str:
        return "met" if ok else "**not met**"

    rates = {side: [t.rate for t in turns] for side, turns in single.items()}
    print(f"## enclaved on a remote engine: llama-server ({date.today().isoformat()})\n")
    print(
        f"Machine: {machine()}. Model: `{args.model.name}` ({args.model.stat().st_size / 2**20:.0f} MiB) served by llama-server "
        f"(`-np 1`, {args.threads} thread{'s' if args.threads != 1 else ''}) as the engine `ls`; enclaved's agent on `smollm2@ls` (gRPC over the Unix socket) vs "
        "the same server read directly with httpx (streaming SSE over loopback, the body enclaved sends). Replies of at most "
        f"{args.tokens} tokens, temperature 0, seed 1, every turn a system prompt no earlier one had. Rates: generated tokens "
        "after the first over the time from the first token to the last, as the client sees them; first token: from sending "
        "the request. Values are medians; ratios and differences are medians of per-round ones, the sides measured back to "
        f"back in alternating order ({len(single['enclaved'])} rounds; {len(crowd['two'])} for (c)).\n"
    )
    print("| one stream | through enclaved | llama-server directly |")
    print("|---|---|---|")
    print(f"| generation tok/s | {med(rates['enclaved']):.1f} | {med(rates['direct']):.1f} |")
    print(
        f"| first token, ms (p50) | {med(t.first for t in single['enclaved']) * 1000:.1f} | {med(t.first for t in single['direct']) * 1000:.1f} |"
    )
    print(
        "| completion / prompt tokens | "
        + " | ".join(f"{med(t.tokens for t in single[s]):.0f} / {med(t.prompt_tokens for t in single[s]):.0f}" for s in single)
        + " |"
    )
    total = sum(served.values())
    shares = [served[u] / total if total else 0.0 for u in urls]
    two, one = med(crowd["two"]), med(crowd["one"])
    print(
        f"\n(c) {AGENTS} agents at once, one turn each per round, replies of at most {args.crowd_tokens} tokens: engine `two` has "
        f"two llama-server replicas (each 1 thread, `-np {AGENTS // 2}`), engine `one` the first of them alone. Aggregate: all "
        f"completion tokens over the time from sending the {AGENTS} turns to the last token.\n"
    )
    print("| measure | result | target | |")
    print("|---|---|---|---|")
    a = paired(rates["enclaved"], rates["direct"])
    print(f"| (a) one stream, through enclaved / directly | {a:.3f}× | ≥ 0.97× | {verdict(a >= 0.97)} |")
    b = diffs_ms(single["enclaved"], single["direct"])
    print(f"| (b) first token, enclaved − directly, p50 of per-round differences | {b:+.1f} ms | ≤ 5 ms | {verdict(b <= 5)} |")
    spread = " / ".join(f"{s:.0%}" for s in shares)
    print(
        f"| (c) turns served by replica 1 / replica 2 ({total} turns) | {spread} | 40–60% each | {verdict(all(0.4 <= s <= 0.6 for s in shares))} |"
    )
    c = paired(crowd["two"], crowd["one"])
    print(
        f"| (c) aggregate, two replicas / the first alone ({two:.1f} / {one:.1f} tok/s) | {c:.3f}× | not below 1.0× | {verdict(c >= 1.0)} |"
    )


if __name__ == "__main__":
    main()
