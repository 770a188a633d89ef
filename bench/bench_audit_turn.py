"""What the audit log adds to a chat turn, measured in one run.

    python bench/bench_audit_turn.py [--model models/demo.gguf] [--turns 20] [--max-tokens 128]

A turn waits on the audit log twice: chat.request before it starts, and chat.completion
together with the reply's transcript row (one commit) before the reply is acknowledged; in
between, as the turn starts, the person's message is stored (its own commit, beside the
prompt's building; the reply's commit comes after it).
This bench times whole turns through a real enclaved on MODEL, then times exactly that work
(with the turn's own prompt and reply sizes, synchronous=FULL) on an audit log of the same
kind, and prints the ratio. With the tiny demo model a turn is short,
so the ratio is the worst case; with a real model it is smaller.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import grpc

from enclave.demo import private_daemon
from enclave_contract.v1 import chat_pb2, chat_pb2_grpc
from enclaved.audit import Actor, AuditConfig, AuditLog, Entry

PROMPT = "Summarise the discharge letter for the patient in plain words, and list the medication changes."
ACTOR = Actor("peercred", "bench", 1000, 4242)


def turn_times(model: Path, turns: int, max_tokens: int) -> tuple[list[float], int]:
    with tempfile.TemporaryDirectory(prefix="bat-", dir="/tmp") as tmp:
        config = f'[[models]]\nname = "{model.stem}"\nn_ctx = 2048\n\n[[agents]]\nname = "a"\nmodel = "{model.stem}"\nmax_tokens = {max_tokens}\n'
        with private_daemon(Path(tmp), model.parent.resolve(), config, timeout=60) as sock:
            with grpc.insecure_channel(f"unix:{sock}") as channel:
                chat = chat_pb2_grpc.ChatStub(channel)
                list(chat.Chat(chat_pb2.ChatRequest(agent="a", message="warm up"), timeout=600))  # loads the model
                times, reply_chars = [], 0
                for i in range(turns):
                    started = time.perf_counter()
                    events = list(chat.Chat(chat_pb2.ChatRequest(agent="a", message=f"{PROMPT} ({i})"), timeout=600))
                    times.append(time.perf_counter() - started)
                    reply_chars = max(reply_chars, sum(len(e.delta.text) for e in events if e.HasField("delta")))
    return times, reply_chars


async def audit_times(turns: int, reply_chars: int) -> list[float]:
    reply = ("word " * (reply_chars // 5 + 1))[:reply_chars]
    with tempfile.TemporaryDirectory(prefix="bat-", dir="/tmp") as tmp:
        log = await AuditLog.open(Path(tmp), config=AuditConfig())
        try:
            times = []
            for i in range(turns):
                started = time.perf_counter()
                await log.append(Entry("chat.request", agent="a", model="m", turn=f"t{i}", text={"prompt": PROMPT}), ACTOR)
                await log.conversations.save_message("a", 2 * i, "user", PROMPT, f"t{i}")  # as the turn starts
                await asyncio.gather(  # as the daemon ends a turn: one commit for the two
                    log.conversations.save_message("a", 2 * i + 1, "assistant", reply, f"t{i}", "max_tokens"),
                    log.append(
                        Entry(
                            "chat.completion",
                            agent="a",
                            model="m",
                            turn=f"t{i}",
                            payload={"usage": {"prompt_tokens": 40, "completion_tokens": 128}},
                            text={"completion": reply},
                        ),
                        ACTOR,
                    ),
                )
                times.append(time.perf_counter() - started)
            return times
        finally:
            await log.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=Path("models/demo.gguf"))
    p.add_argument("--turns", type=int, default=20)
    p.add_argument("--max-tokens", type=int, default=128)
    args = p.parse_args()
    if not args.model.exists():
        raise SystemExit(f"{args.model} is missing; `enclave make-model {args.model}` makes one")
    turns, reply_chars = turn_times(args.model, args.turns, args.max_tokens)
    audit = asyncio.run(audit_times(args.turns, reply_chars))
    t, a = statistics.median(turns), statistics.median(audit)
    print(f"model {args.model.name}, {args.max_tokens} tokens a reply, {args.turns} turns")
    print(f"chat turn (median):            {t * 1000:8.1f} ms")
    print(f"its audit and store work:      {a * 1000:8.1f} ms")
    print(f"audit share of a turn:         {100 * a / t:8.2f} %   (goal < 2%)")


if __name__ == "__main__":
    main()
