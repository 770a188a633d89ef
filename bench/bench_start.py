"""How soon ``enclaved`` answers ``enclave status``: from starting the process until the first
``Status`` answer, both real models (``make models``) in its folder.

    python bench/bench_start.py [--runs 5]

Each try connects afresh, as each ``enclave status`` does (a channel kept across tries would
wait out gRPC's reconnect backoff, about a second, and measure that instead). Each run starts
once with an empty data folder (no header cache) and once more with the folder it left.
Prints a Markdown table; copy it into docs/benchmarks.md. The machine may be shared: run it a
few times, on a quiet machine if you can, and say so with the figures.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import grpc
from bench_daemon import machine

from enclave_contract.v1 import status_pb2, status_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
REAL = ("smollm2.gguf", "gemma3.gguf")


def answered_after(models: Path, data: Path) -> float:
    """Seconds from starting enclaved until a fresh connection gets a ``Status`` answer."""
    socket = Path(tempfile.mkdtemp(prefix="enc-start-", dir="/tmp")) / "s.sock"
    started = time.perf_counter()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "enclaved.cli",
            "--socket",
            str(socket),
            "--models",
            str(models),
            "--data",
            str(data),
            "--log-level",
            "warning",
        ]
    )
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"enclaved exited with {proc.returncode}")
            if socket.exists():
                with grpc.insecure_channel(f"unix:{socket}") as channel:
                    try:
                        next(iter(status_pb2_grpc.StatusStub(channel).Status(status_pb2.StatusRequest(once=True), timeout=2)))
                        return time.perf_counter() - started
                    except grpc.RpcError:
                        pass
            time.sleep(0.002)
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    missing = [n for n in REAL if not (ROOT / "models" / n).exists()]
    if missing:
        raise SystemExit(f"missing {', '.join(missing)}: run `make models`")
    models = Path(tempfile.mkdtemp(prefix="enc-start-models-", dir="/tmp"))
    for name in REAL:
        (models / name).symlink_to(ROOT / "models" / name)
    cold, warm = [], []
    for _ in range(args.runs):
        data = Path(tempfile.mkdtemp(prefix="enc-start-data-", dir="/tmp"))
        cold.append(answered_after(models, data))
        time.sleep(1)
        warm.append(answered_after(models, data))
    print(f"## enclaved start until `Status` answers ({date.today().isoformat()}, {args.runs} runs)\n")
    print(f"Machine: {machine()}; both real models in the folder.\n")
    print("| data folder | median, s | min, s | max, s |\n|---|---|---|---|")
    for label, xs in (("empty (no header cache)", cold), ("again, with the header cache", warm)):
        print(f"| {label} | {statistics.median(xs):.3f} | {min(xs):.3f} | {max(xs):.3f} |")


if __name__ == "__main__":
    main()
