"""The workbench under load: how many tokens a second the TUI shows while keys still feel instant.

    python bench/bench_tui.py [--rates 200,500,1000,2000,3000,4000,6000,8000] [--presses 15]
                              [--switch-rates 0,200,2000] [--switches 30]

For each aggregate rate, a scripted daemon (``tests/tui/scripted_daemon.py``, synthetic mode, its
own process so its CPU is not the TUI's) streams four agents' turns, one delta per agent every
33 ms as enclaved does, and the real ``enclave`` workbench runs attached to it in a 160x48
pseudo-terminal whose output a thread drains as a terminal would. After a warm-up:

- **key latency**: a unique Greek letter is typed into the prompt line, and the time until its
  UTF-8 bytes come out of the terminal is taken (then a backspace); median and p95;
- **shown rate**: the daemon puts a marker word in each agent's text every 0.1 s and records
  when it wrote it and how many tokens it had written by then; the first time a marker comes
  out of the terminal says how far the TUI had got. gRPC's client buffers megabytes of unread
  messages, so tokens *written* by the daemon alone cannot show that the TUI falls behind;
- **display lag**: from the daemon writing a marker to the marker on screen;
- **CPU**: utime+stime of the TUI process (and any children), over the same window, in % of
  one core;
- **pane switching** (at the ``--switch-rates``, after the rest): alt+right and alt+N by
  turns, each selecting another pane, and the time until the newly selected pane's corner comes
  out of the terminal in the accent colour (``tui_frames``); median and p95.

A rate is *sustained* when the TUI shows >= 95% of it and a key press shows within 50 ms
(p95). Prints a Markdown report; copy it into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import bisect
import fcntl
import json
import os
import pty
import re
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from tui_frames import measure_switches

ROOT = Path(__file__).resolve().parent.parent
DAEMON = ROOT / "tests" / "tui" / "scripted_daemon.py"
ENCLAVE = Path(sys.executable).with_name("enclave")
COLS, ROWS = 160, 48
AGENTS = 4
MARK_EVERY = 0.1  # seconds between marker words in one agent's text
GOAL_RATE = 2000  # tok/s aggregate, sustained
GOAL_CPU = 25  # % of one core at 200 tok/s
KEY_BUDGET_MS = 50.0
SHOWN_FRACTION = 0.95
KEY_TIMEOUT = 1.0  # a press not shown by then counts as this long
SWITCH_BUDGET_MS = 100.0
SWITCH_TIMEOUT = 2.0  # a pane switch not shown by then counts as this long
MARKER = re.compile(rb"zq[a-z]{4}(?![a-z])")
# one unique letter per press: Greek, then Cyrillic (the stream is lowercase ASCII only)
LETTERS = [chr(c) for c in range(0x3B1, 0x3CA) if c != 0x3C2] + [chr(c) for c in range(0x430, 0x450)]
CLK_TCK = os.sysconf("SC_CLK_TCK")


def machine() -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), "?"
    )
    mem = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))) / 2**20
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB"


def tui_version() -> str:
    """The commit the TUI was measured at, and whether tui/ had changes not yet committed."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "tui"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}" + (" with uncommitted changes in tui/" if dirty else "")


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


# ---- processes ---------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime+stime of a process and, recursively, its live children."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    total = (int(fields[11]) + int(fields[12])) / CLK_TCK
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return total + sum(cpu_seconds(int(c)) for c in children)


def machine_cpu_seconds() -> float:
    """CPU time every core spent busy since boot (from /proc/stat)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in Path("/proc/stat").read_text().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def stop_process(pid: int, wait: float = 3.0) -> None:
    """SIGTERM, then SIGKILL if it is still there after ``wait`` seconds; reaps it."""
    for sig, grace in ((signal.SIGTERM, wait), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                return
            if done:
                return
            time.sleep(0.02)


class Terminal:
    """The TUI in a pseudo-terminal; a thread reads everything it writes, with timestamps."""

    def __init__(self, argv: list[str]) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "ENCLAVE_SOCKET", "ENCLAVE_CLIENT_CONFIG")}
        env["TERM"] = "xterm-256color"
        pid, fd = pty.fork()
        if pid == 0:  # the child: the pty is its controlling terminal and stdio
            try:
                fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
                os.execve(argv[0], argv, env)
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        self.buf = bytearray()
        self.ends: list[int] = []  # offset after each chunk read ...
        self.times: list[float] = []  # ... and when it was read (time.monotonic())
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 1 << 16)
            except OSError:
                chunk = b""
            now = time.monotonic()
            with self.cond:
                if not chunk:
                    self.ends.append(len(self.buf))
                    self.times.append(now)
                    self.cond.notify_all()
                    return
                self.buf += chunk
                self.ends.append(len(self.buf))
                self.times.append(now)
                self.cond.notify_all()

    def offset(self) -> int:
        with self.cond:
            return len(self.buf)

    def time_of(self, end: int) -> float:
        """When the byte before offset ``end`` was read."""
        return self.times[bisect.bisect_left(self.ends, end)]

    def wait_for(self, needle: bytes, start: int, timeout: float) -> float | None:
        """When ``needle`` first came out at or after ``start``; None if not within ``timeout``."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                i = self.buf.find(needle, max(0, start))
                if i >= 0:
                    return self.time_of(i + len(needle))
                left = deadline - time.monotonic()
                if left <= 0 or not self.thread.is_alive():
                    return None
                self.cond.wait(left)

    def wait_until(self, find: Callable[[bytes, int], int | None], start: int, timeout: float) -> float | None:
        """When what ``find`` looks for first came out at or after ``start``; None if not within
        ``timeout``. ``find(data, start)`` gets the output from ``start`` on and returns the
        offset just after what it found, or None."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                end = find(bytes(self.buf[start:]), start)
                if end is not None:
                    return self.time_of(end)
                left = deadline - time.monotonic()
                if left <= 0 or not self.thread.is_alive():
                    return None
                self.cond.wait(left)

    def write(self, data: bytes) -> None:
        os.write(self.fd, data)

    def close(self) -> None:
        stop_process(self.pid)
        self.thread.join(timeout=2)
        os.close(self.fd)


# ---- one rate ----------------------------------------------------------------------------------


@dataclass
class Result:
    rate: float
    written: float  # tok/s the daemon wrote
    shown: float  # tok/s the TUI put on screen
    lag_p50: float  # ms, marker written -> on screen (the markers that came out)
    lag_p95: float
    marks_shown: float  # fraction of the window's markers that came out by its end + 1 s
    key_p50: float  # ms
    key_p95: float
    keys_lost: int  # presses not shown within KEY_TIMEOUT
    cpu: float  # % of one core
    other_cpu: float  # % of one core: everything else on the machine (not the TUI, daemon or bench)
    keys: list[float]  # every press, ms
    switches: list[float] = field(default_factory=list)  # every pane switch, ms (none measured: empty)
    switches_lost: int = 0  # switches not shown within SWITCH_TIMEOUT

    @property
    def sustained(self) -> bool:
        return self.shown >= SHOWN_FRACTION * self.rate and self.key_p95 <= KEY_BUDGET_MS


def read_stats(path: Path) -> dict:
    return json.loads(path.read_text())


def wait_until(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def tui_argv(socket: Path, config: Path) -> list[str]:
    """``enclave --socket S --no-spawn`` with an empty settings file (the defaults, whatever
    ~/.config holds)."""
    config.write_text("")
    return [str(ENCLAVE), "--socket", str(socket), "--config", str(config), "--no-spawn"]


def run_rate(rate: float, presses: int, spacing: float, warmup: float, switches: int = 0) -> Result:
    tmp = Path(tempfile.mkdtemp(prefix="bt-", dir="/tmp"))
    socket, stats_path = tmp / "s.sock", tmp / "stats.json"
    daemon: subprocess.Popen[bytes] | None = None
    term: Terminal | None = None
    try:
        with (tmp / "daemon.log").open("wb") as log:
            daemon = subprocess.Popen(
                [
                    sys.executable,
                    str(DAEMON),
                    "--socket",
                    str(socket),
                    "--agents",
                    str(AGENTS),
                    "--rate",
                    str(rate),
                    "--mark-every",
                    str(MARK_EVERY),
                    "--stats",
                    str(stats_path),
                ],
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
            )
        wait_until(stats_path.exists, 15, "the scripted daemon")
        term = Terminal(tui_argv(socket, tmp / "client.toml"))
        try:
            wait_until(lambda: read_stats(stats_path)["seconds"] > 0, 30, "the TUI to attach (Watch)")
        except RuntimeError as exc:
            text = re.sub(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[@-Z\\-_])", "", term.buf.decode(errors="replace"))
            raise RuntimeError(f"{exc}; the TUI's last output: {' '.join(text.split())[-400:]!r}") from None
        time.sleep(warmup)

        t0, cpu0, s0 = time.monotonic(), cpu_seconds(term.pid), read_stats(stats_path)
        others0 = machine_cpu_seconds() - cpu0 - cpu_seconds(daemon.pid) - own_cpu_seconds()
        keys: list[float] = []
        lost = 0
        for i in range(presses):
            slot = t0 + i * spacing
            time.sleep(max(0.0, slot - time.monotonic()))
            letter = LETTERS[i % len(LETTERS)].encode()
            start = term.offset()
            sent = time.monotonic()
            term.write(letter)
            seen = term.wait_for(letter, start, KEY_TIMEOUT)
            if seen is None:
                lost += 1
            keys.append(((seen if seen is not None else sent + KEY_TIMEOUT) - sent) * 1000)
            term.write(b"\x7f")  # backspace: keep the prompt line short
        time.sleep(max(0.0, t0 + presses * spacing - time.monotonic()))
        t1, cpu1, s1 = time.monotonic(), cpu_seconds(term.pid), read_stats(stats_path)
        others1 = machine_cpu_seconds() - cpu1 - cpu_seconds(daemon.pid) - own_cpu_seconds()
        time.sleep(1.0)  # let markers written late in the window reach the screen
        switch_ms, switches_lost = measure_switches(term, AGENTS, switches, 0.3, SWITCH_TIMEOUT) if switches else ([], 0)

        term.close()
        buf, ends, times = bytes(term.buf), list(term.ends), list(term.times)
        term = None
        stop_process(daemon.pid, wait=10)  # it writes its stats, markers included, as it exits
        marks = read_stats(stats_path).get("marks", [])
    finally:
        if term is not None:
            term.close()
        if daemon is not None and daemon.poll() is None:
            stop_process(daemon.pid)
        shutil.rmtree(tmp, ignore_errors=True)

    # when each marker first came out of the terminal
    seen_at: dict[str, float] = {}
    for m in MARKER.finditer(buf):
        word = m.group().decode()
        if word not in seen_at:
            seen_at[word] = times[bisect.bisect_left(ends, m.end())]
    shown_by = sorted((seen_at[w], tokens) for w, _, tokens in marks if w in seen_at)

    def tokens_shown(t: float) -> int:
        return max((tok for when, tok in shown_by if when <= t), default=0)

    window = [(w, written) for w, written, _ in marks if t0 <= written <= t1]
    lags = [(seen_at[w] - written) * 1000 for w, written in window if w in seen_at] or [float("nan")]
    return Result(
        rate=rate,
        written=(s1["tokens"] - s0["tokens"]) / max(s1["seconds"] - s0["seconds"], 1e-9),
        shown=(tokens_shown(t1) - tokens_shown(t0)) / (t1 - t0),
        lag_p50=statistics.median(lags),
        lag_p95=percentile(lags, 0.95),
        marks_shown=sum(w in seen_at for w, _ in window) / len(window) if window else float("nan"),
        key_p50=statistics.median(keys),
        key_p95=percentile(keys, 0.95),
        keys_lost=lost,
        cpu=100 * (cpu1 - cpu0) / (t1 - t0),
        other_cpu=max(0.0, 100 * (others1 - others0) / (t1 - t0)),  # clock-tick rounding can dip below 0
        keys=keys,
        switches=switch_ms,
        switches_lost=switches_lost,
    )


# ---- report ------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--rates",
        default="0,200,500,1000,2000,3000,4000,6000,8000",
        help="aggregate tok/s to try, rising, comma-separated (0: attached, nothing streaming)",
    )
    ap.add_argument("--presses", type=int, default=15, help="key presses per rate")
    ap.add_argument("--spacing", type=float, default=0.25, help="seconds between key presses")
    ap.add_argument("--switch-rates", default="0,200,2000", help="the rates at which to time pane switches too")
    ap.add_argument("--switches", type=int, default=30, help="pane switches per rate (0: none)")
    ap.add_argument("--warmup", type=float, default=3.0, help="seconds of streaming before measuring")
    ap.add_argument(
        "--stop-after", type=int, default=0, metavar="N", help="stop after N rates in a row are not sustained (default: try them all)"
    )
    args = ap.parse_args()
    rates = [float(r) for r in args.rates.split(",") if r]
    switch_rates = {float(r) for r in args.switch_rates.split(",") if r}
    if not ENCLAVE.exists():
        sys.exit(f"no {ENCLAVE}; run `make install`")

    results: list[Result] = []
    misses, failed = 0, ""
    try:
        for rate in rates:
            r = run_rate(rate, args.presses, args.spacing, args.warmup, args.switches if rate in switch_rates else 0)
            results.append(r)
            switch = f", switch p95 {percentile(r.switches, 0.95):5.1f} ms" if r.switches else ""
            print(
                f"{rate:6.0f} tok/s: shown {r.shown:7.0f}, key p95 {r.key_p95:5.1f} ms{switch}, lag p50 {r.lag_p50:6.0f} ms, "
                f"CPU {r.cpu:3.0f}%{'' if r.sustained else '  (not sustained)'}",
                file=sys.stderr,
            )
            if rate > 0:
                misses = 0 if r.sustained else misses + 1
            if args.stop_after and misses >= args.stop_after:
                break
    except KeyboardInterrupt:
        print("interrupted; results so far:", file=sys.stderr)
    except RuntimeError as exc:
        failed = str(exc)
        print(f"{exc}; results so far:", file=sys.stderr)

    print(f"## Workbench (enclave TUI) ({date.today().isoformat()})\n")
    print(
        f"Machine: {machine()}. Terminal {COLS}x{ROWS}, {AGENTS} agents (panes), one delta per agent every 33 ms, "
        f"{args.presses} key presses {args.spacing * 1000:.0f} ms apart per rate after {args.warmup:.0f} s of streaming. "
        f"TUI at {tui_version()}.\n"
    )
    print(
        "| target tok/s | written by daemon tok/s | shown by TUI tok/s | display lag p50 / p95 ms (markers shown) "
        "| key p50 / p95 ms | TUI CPU % of a core | rest of the machine, % of a core | sustained |"
    )
    print("|---|---|---|---|---|---|---|---|")

    def ms(v: float) -> str:
        return f"> {KEY_TIMEOUT * 1000:.0f}" if v >= KEY_TIMEOUT * 1000 else f"{v:.1f}"

    for r in results:
        keys = f"{ms(r.key_p50)} / {ms(r.key_p95)}" + (
            f" ({r.keys_lost} of {args.presses} not shown in {KEY_TIMEOUT:.0f} s)" if r.keys_lost else ""
        )
        if r.rate == 0:
            print(f"| 0 (idle) | – | – | – | {keys} | {r.cpu:.0f} | {r.other_cpu:.0f} | – |")
            continue
        print(
            f"| {r.rate:.0f} | {r.written:.0f} | {r.shown:.0f} | {r.lag_p50:.0f} / {r.lag_p95:.0f} ({100 * r.marks_shown:.0f}%) | "
            f"{keys} | {r.cpu:.0f} | {r.other_cpu:.0f} | {'yes' if r.sustained else 'no'} |"
        )
    print()
    sustained = [r.rate for r in results if r.sustained and r.rate > 0]
    tried = [r.rate for r in results if r.rate > 0]
    below = next((rate for rate in tried if rate not in sustained), None)  # the first rate not sustained
    if sustained:
        note = " (every rate up to it too)" if below is None or below > max(sustained) else f" (but not {below:.0f} tok/s)"
        print(f"Highest sustained aggregate rate: **{max(sustained):.0f} tok/s**{note}")
    else:
        print("Highest sustained aggregate rate: **none** of those tried")
    best = max(sustained, default=0.0)
    print(f"(goal: >= {GOAL_RATE} tok/s: {'met' if best >= GOAL_RATE else 'not met'})")
    at200 = next((r for r in results if r.rate == 200), None)
    if at200 is not None:
        print(
            f"\nTUI CPU at 200 tok/s aggregate: **{at200.cpu:.0f}% of one core** "
            f"(goal: <= {GOAL_CPU}%: {'met' if at200.cpu <= GOAL_CPU else 'not met'})"
        )
    report_switches(results, args.switches)
    if failed:
        sys.exit(f"stopped: {failed}")


def report_switches(results: list[Result], count: int) -> None:
    measured = [r for r in results if r.switches]
    if not measured:
        return
    print(
        f"\nPane switching: {count} switches per rate, 0.3 s apart (or as soon as the last was shown), alt+right "
        "and alt+N by turns; from the key to the frame that draws the new pane selected.\n"
    )
    print("| target tok/s | switch p50 / p95 ms | slowest ms |")
    print("|---|---|---|")
    for r in measured:
        lost = f" ({r.switches_lost} of {len(r.switches)} not shown in {SWITCH_TIMEOUT:.0f} s)" if r.switches_lost else ""
        print(
            f"| {'0 (idle)' if r.rate == 0 else f'{r.rate:.0f}'} | {statistics.median(r.switches):.1f} / "
            f"{percentile(r.switches, 0.95):.1f}{lost} | {max(r.switches):.1f} |"
        )
    worst = max(percentile(r.switches, 0.95) for r in measured)
    print(
        f"\nPane switch p95, worst rate: **{worst:.0f} ms** (goal: <= {SWITCH_BUDGET_MS:.0f} ms: {'met' if worst <= SWITCH_BUDGET_MS else 'not met'})"
    )


if __name__ == "__main__":
    main()
