"""A stream while a big model file is copied into the models folder, measured in one run.

    python bench/bench_copyin.py [--runs 3]

An agent on SmolLM2 streams a long reply (temperature 0, a fixed reply length) three ways: with
nothing else happening, while the 241 MiB Gemma file is copied into enclaved's models folder at
full speed (``shutil.copyfile``, as ``cp`` does), and while it is copied slowly, in 4 MiB writes
over about two seconds (as ``scp`` from another machine does, so that discovery sees a file still
being written). For each, the longest gap between two streamed pieces of text and the 99th
percentile gap, from the first piece to the last; and whether the daemon then lists the new model
with its header read. The issue's target: no pause over 100 ms (before: the stream stopped for
10.6-10.9 s while the header was parsed on the event loop).

Prints a Markdown report; copy it into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import threading
import time
from collections.abc import Callable
from datetime import date
from itertools import pairwise
from pathlib import Path

from bench_daemon import machine
from bench_real import MODELS, Daemon

from enclave_contract.v1 import agents_pb2, chat_pb2, models_pb2, models_pb2_grpc

REPLY = 400
CHUNK = 4 << 20
SLOW_SECONDS = 2.0


def copy_fast(src: Path, dst: Path) -> None:
    shutil.copyfile(src, dst)


def copy_slow(src: Path, dst: Path) -> None:
    size = src.stat().st_size
    pause = SLOW_SECONDS / (size / CHUNK)
    with src.open("rb") as r, dst.open("wb") as w:
        while block := r.read(CHUNK):
            w.write(block)
            w.flush()
            time.sleep(pause)


def stream(d: Daemon, copy: Callable[[Path, Path], None] | None, run: int) -> tuple[list[float], int, float]:
    """(gaps between streamed pieces in s, reply tokens, seconds the copy took) of one turn; the
    copy starts once the first piece has arrived."""
    d.agents.ClearTranscript(agents_pb2.ClearTranscriptRequest(name="teller"))  # the same prompt length every time
    times: list[float] = []
    copier: threading.Thread | None = None
    took = [0.0]
    target = d.models / f"copy{run}.gguf"

    def do_copy() -> None:
        t0 = time.perf_counter()
        assert copy is not None
        copy(MODELS / "gemma3.gguf", target)
        took[0] = time.perf_counter() - t0

    tokens = 0
    request = chat_pb2.ChatRequest(agent="teller", message=f"Tell me a long story about a river, number {run}.")
    for ev in d.chat.Chat(request, timeout=600):
        if ev.HasField("delta"):
            times.append(time.perf_counter())
            if copy is not None and copier is None:
                copier = threading.Thread(target=do_copy)
                copier.start()
        elif ev.HasField("finished"):
            tokens = ev.finished.usage.completion_tokens
    if copier is not None:
        copier.join()
    return [b - a for a, b in pairwise(times)], tokens, took[0]


def listed(d: Daemon, name: str, timeout: float = 30) -> str:
    """The new model's state once discovery has seen it settle."""
    stub = models_pb2_grpc.ModelsStub(d.channel)
    deadline = time.monotonic() + timeout
    state = "not listed"
    while time.monotonic() < deadline:
        for m in stub.ListModels(models_pb2.ListModelsRequest(), timeout=10).models:
            if m.name == name:
                state = models_pb2.ModelState.Name(m.state).removeprefix("MODEL_STATE_").lower()
                if state not in ("pending",):
                    return state
        time.sleep(0.1)
    return state


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    for name in ("smollm2.gguf", "gemma3.gguf"):
        if not (MODELS / name).exists():
            raise SystemExit(f"missing models/{name}: run `make models`")
    d = Daemon('[[models]]\nname = "smollm2"\nn_ctx = 2048\nn_seq_max = 1\nn_threads = 2\n', files=("smollm2.gguf",))
    d.put("teller", "smollm2", "You tell long stories.", REPLY)
    d.turn("teller", "Hello.")  # loads the model
    rows = []
    run = 0
    try:
        for label, copy in (
            ("nothing else", None),
            ("a 241 MiB copy at full speed", copy_fast),
            ("the same copy in 4 MiB writes over ~2 s", copy_slow),
        ):
            gaps: list[float] = []
            tokens: list[int] = []
            took: list[float] = []
            states = []
            for _ in range(args.runs):
                run += 1
                g, n, t = stream(d, copy, run)
                gaps += g
                tokens.append(n)
                took.append(t)
                if copy is not None:
                    states.append(listed(d, f"copy{run}"))
                    (d.models / f"copy{run}.gguf").unlink()
            gaps.sort()
            p99 = gaps[int(0.99 * (len(gaps) - 1))]
            copied = f"{statistics.median(took):.2f} s, then {', '.join(sorted(set(states)))}" if copy else "-"
            rows.append(f"| {label} | {statistics.median(tokens):.0f} | {p99 * 1000:.1f} | {gaps[-1] * 1000:.1f} | {copied} |")
    finally:
        d.close()
        shutil.rmtree(d.home, ignore_errors=True)
    print(f"## A stream while a model is copied in ({date.today().isoformat()})\n")
    print(f"Machine: {machine()}. SmolLM2 streams {REPLY}-token replies (temperature 0), {args.runs} turns each way; ")
    print("gaps between streamed pieces of text, first to last.\n")
    print("| while the stream runs | reply tokens (median) | gap p99, ms | longest gap, ms | the copy took; the new model then |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
