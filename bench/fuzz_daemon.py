"""The long fuzzer run against a real enclaved (``make test`` runs a bounded one).

    python bench/fuzz_daemon.py [--calls 12000] [--seed 1] [--clients 4]

Starts enclaved on a generated tiny model, runs ``tests/hardening/fuzzer.py`` from several
clients at once (each with its own seed), then checks what the bounded test checks: no
UNKNOWN or INTERNAL answer, no traceback in the daemon log, a normal chat afterwards, memory
and descriptors bounded, and ``enclave audit verify`` ok. Prints a Markdown report; exit 1 if
any check fails.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from enclave.modelmaker import make_model  # noqa: E402
from tests.hardening.fuzzer import Fuzzer, Outcome  # noqa: E402
from tests.hardening.test_fuzz import CONFIG  # noqa: E402
from tests.helpers import BIN, chat, fds, rss_kib, short_tmpdir, spawn_daemon, wait_ready  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=12_000, help="calls in all")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--clients", type=int, default=4, help="fuzzing clients at once")
    args = p.parse_args()

    models = Path(tempfile.mkdtemp(prefix="fuzz-models-"))
    make_model(models / "tiny.gguf", "tiny")
    d = wait_ready(spawn_daemon(short_tmpdir(), models, CONFIG))
    try:
        chat(d.stubs(), "target", "warm up")
        rss0, fds0 = rss_kib(d.proc.pid), fds(d.proc.pid)
        started = time.monotonic()

        def one(i: int) -> Outcome:
            f = Fuzzer(d.socket, seed=args.seed * 1000 + i, names=["a1", "a2", "target", "new"], models=["tiny", "nope"], spare=["target"])
            try:
                return f.run(args.calls // args.clients)
            finally:
                f.close()

        with ThreadPoolExecutor(args.clients) as pool:
            outcomes = list(pool.map(one, range(args.clients)))
        seconds = time.monotonic() - started
        codes: Counter[str] = Counter()
        bad: list[str] = []
        for o in outcomes:
            codes.update(o.codes)
            bad += o.bad
        after_ok = chat(d.stubs(), "target", "after the fuzzer")[-1].HasField("finished")
        rss1, fds1 = rss_kib(d.proc.pid), fds(d.proc.pid)
        verify = subprocess.run([str(BIN / "enclave"), "--socket", str(d.socket), "audit", "verify"], capture_output=True, text=True)
        tracebacks = d.log.count("Traceback")
    finally:
        d.stop()

    checks = {
        "no UNKNOWN or INTERNAL answer": not bad,
        "no traceback in the daemon log": tracebacks == 0,
        "a normal chat afterwards": after_ok,
        "descriptors bounded (+32)": fds1 < fds0 + 32,
        "RSS bounded (+200 MiB)": rss1 < rss0 + 200 * 1024,
        "audit verify ok": verify.returncode == 0,
    }
    print(
        f"## Fuzzer, {date.today().isoformat()}, {platform.machine()}, {args.calls} calls from {args.clients} clients, seed {args.seed}\n"
    )
    print(f"{seconds:.0f} s; answers: " + ", ".join(f"{k} {v}" for k, v in codes.most_common()))
    print(f"RSS {rss0 // 1024} → {rss1 // 1024} MiB, descriptors {fds0} → {fds1}, tracebacks {tracebacks}\n")
    for name, ok in checks.items():
        print(f"- [{'x' if ok else ' '}] {name}")
    for line in bad[:20]:
        print(f"  - {line}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
