"""Audit log throughput, measured in one run.

    python bench/bench_audit.py [--records 20000] [--appenders 1,8,64] [--reps 3] [--dir DIR]

(a) appends/s: each append is encrypted (AES-256-GCM), hash-chained, sealed, and committed
    with WAL + synchronous=FULL before it returns; concurrent appenders share a commit (one
    fsync per batch). The sealing state and checkpoints are written as in the daemon.
(b) records/s verified by the offline verifier (chain, per-record seal, payload
    authentication, sealing state, checkpoint), on the log written by (a).
(c) one page of the page API (50 rows from the middle, decrypted) and a count, in ms.

Put ``--dir`` on the disk the daemon's data folder lives on: fsync cost is the point.
Prints a Markdown report.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

from enclaved.audit import Actor, AuditConfig, AuditLog, Entry, Filters, verify

PROMPT = "Summarise the discharge letter for the patient in plain words, and list the medication changes. " * 5
ACTOR = Actor("peercred", "bench", 1000, 4242)


def machine() -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
        platform.processor(),
    )
    return f"{cpu}, {os.cpu_count()} cores"


async def append_rate(data: Path, records: int, appenders: int) -> float:
    async with await AuditLog.open(data, config=AuditConfig()) as log:

        async def appender(w: int, n: int) -> None:
            for i in range(n):
                await log.append(
                    Entry(
                        "chat.completion",
                        agent=f"agent{w}",
                        model="tiny",
                        turn=f"t{w}-{i}",
                        payload={"usage": {"prompt_tokens": 120, "completion_tokens": 80}, "timings": {"ttft_ms": 41.5, "total_ms": 880.2}},
                        text={"prompt": PROMPT, "completion": PROMPT[:300]},
                    ),
                    ACTOR,
                )

        t0 = time.perf_counter()
        await asyncio.gather(*(appender(w, records // appenders) for w in range(appenders)))
        return (records // appenders * appenders) / (time.perf_counter() - t0)


async def page_ms(data: Path, records: int) -> tuple[float, float]:
    async with await AuditLog.open(data) as log:
        t0 = time.perf_counter()
        page = await log.rows(Filters(), records // 2, 50)
        t1 = time.perf_counter()
        await log.count(Filters(action="chat.*"))
        t2 = time.perf_counter()
    assert len(page) == 50
    return (t1 - t0) * 1000, (t2 - t1) * 1000


def verify_rate(data: Path) -> float:
    t0 = time.perf_counter()
    result = verify(data)
    elapsed = time.perf_counter() - t0
    assert result.ok, result.summary
    return result.records / elapsed


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):,.0f} ({min(values):,.0f}–{max(values):,.0f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=20000)
    ap.add_argument("--appenders", default="1,8,64", help="comma-separated concurrency levels")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=None, help="where to write (default: a temporary folder)")
    args = ap.parse_args()
    levels = [int(x) for x in args.appenders.split(",")]
    root = Path(tempfile.mkdtemp(prefix="bench-audit-", dir=args.dir))
    try:
        rates: dict[int, list[float]] = {}
        verified: list[float] = []
        pages: list[tuple[float, float]] = []
        for rep in range(args.reps):
            for n in levels:
                data = root / f"r{rep}-c{n}"
                count = args.records if n > 1 else max(args.records // 10, 100)  # one appender: fsync-bound
                rates.setdefault(n, []).append(asyncio.run(append_rate(data, count, n)))
                if n == max(levels):
                    verified.append(verify_rate(data))
                    pages.append(asyncio.run(page_ms(data, count)))
                shutil.rmtree(data)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    print(f"## Audit log ({date.today().isoformat()})\n")
    print(f"Machine: {machine()}; SQLite WAL, synchronous=FULL; {args.reps} runs, median (min–max).\n")
    print("| concurrent appenders | appends/s |")
    print("|---|---|")
    for n in levels:
        print(f"| {n} | {spread(rates[n])} |")
    print()
    print(f"Verification (offline, {args.records} records): **{spread(verified)} records/s**\n")
    print(
        f"Page API: 50 rows from the middle in {statistics.median(p[0] for p in pages):.1f} ms; "
        f"count with a filter in {statistics.median(p[1] for p in pages):.1f} ms (medians).\n"
    )
    best8 = statistics.median(rates[8]) if 8 in rates else None
    if best8 is not None:
        print(
            f"(goals: >= 5,000 appends/s with 8 appenders: {'met' if best8 >= 5000 else 'not met'}; "
            f">= 50,000 records/s verified: {'met' if statistics.median(verified) >= 50000 else 'not met'})"
        )


if __name__ == "__main__":
    main()
