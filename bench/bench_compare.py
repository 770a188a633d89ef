"""The engine's rates before and after a change, measured in one run.

    python bench/bench_compare.py --before DIR [--model models/bench.gguf] [--tokens 64] [--reps 5]

``DIR`` is a PYTHONPATH under which ``python -m enclaved.cli`` runs another version of the
daemon (see docs/benchmarks.md for making one from a git commit). Both daemons are started on
their own sockets with the same model, threads and slots, and measured alternately, in turn
order swapped every round, on the same requests: (a) one stream, generation tok/s seen by the
client from its first token to its last; (b) four agents at once, aggregate generated tok/s
from the first request to the last token. Every request has a system prompt no earlier one
had. Prints a Markdown table: medians, and the median of the per-round after/before ratios.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_daemon import ROOT, SYSTEM, DaemonRun, machine

from enclave.modelmaker import make_model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", required=True, help="PYTHONPATH of the daemon to compare against")
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "bench.gguf")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--agents", type=int, default=4)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    if not args.model.exists():
        print(f"making {args.model} (1b, Q4_K_M; a few minutes)", file=sys.stderr)
        make_model(args.model, "1b")
    n, k = args.tokens, args.agents
    daemons = {"before": DaemonRun(args.model, args.threads, k, args.before), "after": DaemonRun(args.model, args.threads, k)}
    single: dict[str, list[float]] = {name: [] for name in daemons}
    aggregate: dict[str, list[float]] = {name: [] for name in daemons}
    rounds = iter(range(1_000_000))

    def systems(count: int) -> list[str]:
        r = next(rounds)
        return [f"[round {r}] You are agent {i}. {SYSTEM}" for i in range(count)]

    try:
        for d in daemons.values():
            d.agent("single", n, 1)
            d.stream("single")  # load the model and warm up
        for rep in range(args.reps):
            order = list(daemons.items()) if rep % 2 == 0 else list(daemons.items())[::-1]
            for name, d in order:
                d.agent("single", n, rep, systems(1)[0])
                single[name].append(d.stream("single")[1])
            for name, d in order:
                aggregate[name].append(d.concurrent(systems(k), n))
    finally:
        for d in daemons.values():
            d.close()

    med = statistics.median

    def ratio(key: dict[str, list[float]]) -> float:
        return med(a / b for a, b in zip(key["after"], key["before"]))

    print(f"## The engine before and after ({date.today().isoformat()})\n")
    print(
        f"Machine: {machine()}. Model: `{args.model.name}` ({args.model.stat().st_size / 2**20:.0f} MiB). "
        f"{args.threads} threads, {n} generated tokens per request, distinct system prompts, {args.reps} rounds, "
        "the two daemons measured alternately. Values are medians; the ratio is the median of per-round ratios.\n"
    )
    print("| measure | before, tok/s | after, tok/s | after / before |")
    print("|---|---|---|---|")
    print(f"| one stream, generation | {med(single['before']):.1f} | {med(single['after']):.1f} | {ratio(single):.3f} |")
    print(f"| {k} agents at once, aggregate | {med(aggregate['before']):.1f} | {med(aggregate['after']):.1f} | {ratio(aggregate):.3f} |")


if __name__ == "__main__":
    main()
