"""Team runs against the same turns sent one by one, on SmolLM2, measured in one run.

    python bench/bench_teams.py [--quick] [--tokens 64] [--reps 1] [--threads 2] [--brief WORDS] [--threads 2]

Every agent runs on SmolLM2 (``make models``) at temperature 0, seed 1, with the same
``max_tokens`` per reply, each in its own sequence (slot). Two teams, each timed from the
``Teams.Run`` call to RunFinished: (a) a roundtable of 4 agents × 3 rounds (max_turns 12),
(b) a chain of 3 agents. For every member turn: prompt tokens, cached prompt tokens
(``TurnFinished.usage``: what the scheduler reused from the agent's KV sequence) and reply
tokens.

Then the same turns one by one, each member's input taken from the team run's ``TurnStarted``
events, on agents of the same names and settings (their own conversations, so their prompts
are the team's), each side on a fresh enclaved: through ``enclave chat --json`` as a
subprocess, the way a script would chain agents, and through the gRPC ``Chat`` call, which
leaves out the process start. Aggregate tok/s is generated tokens over the wall time of all
turns; the replies are compared word for word. The wall time per turn beyond the turn's own
(the daemon's time to first token plus generation, from TurnFinished) is what sending the
turns costs: on a busy machine it holds still while the rest swings.

A roundtable member's later turn reads what the other three said since it last spoke: those
tokens are new to its sequence and must be evaluated, so the share of its prompt that can be
cached is at most (what its sequence held) / (prompt). The report gives both: the share of the
prompt cached (the issue's ≥ 90% line) and the share of what the sequence held that was reused.
With ``--brief WORDS`` every roundtable member's system prompt starts with the same background
of about that many words, as a site gives its agents, and what a member holds outweighs the
others' new replies.

``--reps N`` runs each side N times, the sides taking turns, and reports each side's run of
median wall time: the machine's drift then falls on all sides alike. With 2 threads on a
2-core machine that something else also uses, llama.cpp's threads wait on each other and one
side can run several times slower than another by chance; ``--threads 1`` is steadier there.

Prints a Markdown report; copy it into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from bench_daemon import machine
from bench_real import MODELS, REAL, Daemon
from google.protobuf import json_format

from enclave_contract.v1 import chat_pb2, teams_pb2, teams_pb2_grpc

SLOTS = 8  # every agent keeps its own sequence: no eviction in anyone's timing
CONFIG = '[[models]]\nname = "smollm2"\nn_ctx = 2048\nn_seq_max = {slots}\nn_threads = {threads}\n'
ROUND = {
    "host": "You host a panel about city life. Keep the talk going and sum up what others said.",
    "planner": "You are a city planner. You speak about streets, housing and parks.",
    "doctor": "You are a doctor. You speak about health, air and noise in cities.",
    "teacher": "You are a teacher. You speak about schools, children and learning.",
}
ROUND_MESSAGE = "Discuss: how should a city change to make daily life better?"
CHAIN = {
    "writer": "You write short, clear paragraphs.",
    "critic": "You point out what a draft lacks, briefly.",
    "editor": "You rewrite a draft to make it better.",
}
CHAIN_MESSAGE = "Write a paragraph about why people keep gardens."
CACHED_TARGET = 0.9


@dataclass
class Turn:
    agent: str
    message: str  # what the member was told (its user message)
    prompt: int = 0
    cached: int = 0
    reply_tokens: int = 0
    reply: str = ""
    busy_ms: float = 0.0  # the daemon's own time for the turn: request to first token, then generation


@dataclass
class Side:
    turns: list[Turn] = field(default_factory=list)
    seconds: float = 0.0
    run_seconds: float = 0.0  # a team run's own elapsed time, as RunFinished says

    @property
    def tok_s(self) -> float:
        return sum(t.reply_tokens for t in self.turns) / self.seconds

    @property
    def overhead_ms(self) -> float:
        """Wall time per turn beyond the turns' own (what sending them costs)."""
        return (self.seconds * 1000 - sum(t.busy_ms for t in self.turns)) / len(self.turns)


def brief(words: int) -> str:
    """A panel's shared background of about ``words`` words (a few more tokens on SmolLM2), as
    a site gives its agents: a roundtable member's own sequence then holds most of each later
    prompt, and the others' new replies are the smaller part."""
    facts = [
        f"Fact {i}: district {i % 12} has {1000 + 37 * i} homes, {i % 7 + 2} schools, {i % 5 + 1} clinics and a park of {i % 9 + 1} hectares."
        for i in range(words // 17 + 1)
    ]
    return "Background the panel shares:\n" + "\n".join(facts) + "\n\n"


def put_agents(d: Daemon, tokens: int, background: str = "") -> None:
    for name, system in ROUND.items():
        d.put(name, "smollm2", background + system, tokens)
    for name, system in CHAIN.items():
        d.put(name, "smollm2", system, tokens)


def team_run(d: Daemon, kind: str, agents: dict[str, str], message: str, max_turns: int) -> Side:
    team = teams_pb2.Team(name=f"bench-{kind}", kind=kind, members=list(agents), max_turns=max_turns, max_tokens=100_000)
    team.timeout_seconds = 600
    side, by_step = Side(), {}
    t0 = time.perf_counter()
    for ev in teams_pb2_grpc.TeamsStub(d.channel).Run(teams_pb2.RunTeamRequest(message=message, adhoc=team), timeout=900):
        kind_ = ev.WhichOneof("kind")
        if kind_ == "started":
            by_step[ev.step] = Turn(ev.agent, ev.started.user_message)
            side.turns.append(by_step[ev.step])
        elif kind_ == "delta":
            by_step[ev.step].reply += ev.delta.text
        elif kind_ == "finished":
            _finished(by_step[ev.step], json_format.MessageToDict(ev.finished, preserving_proto_field_name=True))
        elif kind_ == "error":
            raise SystemExit(f"{ev.agent}: {ev.error.message}")
        elif kind_ == "run_finished":
            side.seconds, end = time.perf_counter() - t0, ev.run_finished
            side.run_seconds = end.elapsed_ms / 1000
            if end.reason not in (chat_pb2.RUN_END_DONE, chat_pb2.RUN_END_MAX_TURNS):
                raise SystemExit(f"the {kind} run ended early: {end.message}")
            return side
    raise SystemExit(f"the {kind} run's stream ended before RunFinished")


def _finished(turn: Turn, finished: dict[str, Any]) -> None:
    """From a TurnFinished as JSON (what ``enclave chat --json`` prints)."""
    usage, timings = finished.get("usage", {}), finished.get("timings", {})
    turn.prompt, turn.cached = usage.get("prompt_tokens", 0), usage.get("cached_prompt_tokens", 0)
    turn.reply_tokens = usage.get("completion_tokens", 0)
    turn.busy_ms = timings.get("time_to_first_token_ms", 0.0) + timings.get("generation_ms", 0.0)


def one_by_one_cli(d: Daemon, team: Side) -> Side:
    """Each team turn again through ``enclave chat --json AGENT -`` (a new process per turn)."""
    enclave = Path(sys.executable).with_name("enclave")
    cmd = [str(enclave)] if enclave.exists() else [sys.executable, "-m", "enclave.cli"]
    side = Side()
    t0 = time.perf_counter()
    for t in team.turns:
        done = subprocess.run(
            [*cmd, "--socket", str(d.socket), "chat", "--json", t.agent, "-"], input=t.message, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise SystemExit(f"enclave chat failed: {done.stderr.strip()}")
        turn = Turn(t.agent, t.message)
        for line in done.stdout.splitlines():
            ev = json.loads(line)
            if ev["event"] == "delta":
                turn.reply += ev["text"]
            elif ev["event"] == "finished":
                _finished(turn, ev)
        side.turns.append(turn)
    side.seconds = time.perf_counter() - t0
    return side


def one_by_one_grpc(d: Daemon, team: Side) -> Side:
    """Each team turn again through the gRPC ``Chat`` call on one channel."""
    side = Side()
    t0 = time.perf_counter()
    for t in team.turns:
        turn = Turn(t.agent, t.message)
        for ev in d.chat.Chat(chat_pb2.ChatRequest(agent=t.agent, message=t.message), timeout=600):
            if ev.HasField("delta"):
                turn.reply += ev.delta.text
            elif ev.HasField("finished"):
                _finished(turn, json_format.MessageToDict(ev.finished, preserving_proto_field_name=True))
            elif ev.HasField("error"):
                raise SystemExit(f"{ev.agent}: {ev.error.message}")
        side.turns.append(turn)
    side.seconds = time.perf_counter() - t0
    return side


def held_before(turns: list[Turn]) -> list[int | None]:
    """Per turn: the tokens the member's sequence held before it (its previous prompt and
    reply), None for a member's first turn."""
    last: dict[str, int] = {}
    held: list[int | None] = []
    for t in turns:
        held.append(last.get(t.agent))
        last[t.agent] = t.prompt + t.reply_tokens
    return held


def pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "–"


def part(title: str, team: Side, cli: Side, grpc_: Side) -> list[str]:
    rows = [
        f"{title}\n",
        "| step | member | round | prompt tokens | cached | cached / held before | reply tokens | one by one (`enclave chat`): prompt / cached / reply |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rounds: dict[str, int] = {}
    later: list[tuple[Turn, int]] = []
    for i, (t, held, c) in enumerate(zip(team.turns, held_before(team.turns), cli.turns), 1):
        rounds[t.agent] = rounds.get(t.agent, 0) + 1
        if held is not None:
            later.append((t, held))
        of_held = pct(t.cached, held) if held is not None else "–"
        rows.append(
            f"| {i} | {t.agent} | {rounds[t.agent]} | {t.prompt} | {pct(t.cached, t.prompt)} | {of_held} | {t.reply_tokens} "
            f"| {c.prompt} / {c.cached} / {c.reply_tokens} |"
        )
    same = sum(t.reply == c.reply == g.reply for t, c, g in zip(team.turns, cli.turns, grpc_.turns))
    tokens = [sum(t.reply_tokens for t in s.turns) for s in (team, cli, grpc_)]
    rows += [
        "",
        f"Replies word for word the same on all three sides: {same} of {len(team.turns)}; reply tokens: team {tokens[0]}, "
        f"`enclave chat` {tokens[1]}, gRPC `Chat` {tokens[2]}.\n",
        "| how the turns were sent | wall time, s | reply tokens | aggregate tok/s | wall time per turn beyond the turn's own, ms |",
        "|---|---|---|---|---|",
        f"| team run (`Teams.Run`, call to RunFinished; the run itself: {team.run_seconds:.2f} s) | {team.seconds:.2f} | {tokens[0]} "
        f"| {team.tok_s:.1f} | {team.overhead_ms:.0f} |",
        f"| one by one, `enclave chat` (a process per turn) | {cli.seconds:.2f} | {tokens[1]} | {cli.tok_s:.1f} | {cli.overhead_ms:.0f} |",
        f"| one by one, gRPC `Chat` (one channel) | {grpc_.seconds:.2f} | {tokens[2]} | {grpc_.tok_s:.1f} | {grpc_.overhead_ms:.0f} |",
        "",
        f"Team / `enclave chat` one by one: **{team.tok_s / cli.tok_s:.2f}×**; team / gRPC one by one: **{team.tok_s / grpc_.tok_s:.2f}×**.",
    ]
    if later:
        of_prompt = all(t.cached >= CACHED_TARGET * t.prompt for t, _ in later)
        reused = all(t.cached >= CACHED_TARGET * held for t, held in later)
        low = min(t.cached / t.prompt for t, _ in later)
        rows += [
            "",
            f"- {'PASS' if of_prompt else 'FAIL'}: every member turn after the member's first has ≥ 90% of its prompt cached "
            f"(lowest {100 * low:.0f}%)",
            f"- {'PASS' if reused else 'FAIL'}: every member turn after the member's first reuses ≥ 90% of what its sequence held",
        ]
    return rows


PARTS = (("roundtable", ROUND, ROUND_MESSAGE, 12), ("chain", CHAIN, CHAIN_MESSAGE, 3))


def side(how: str, config: str, tokens: int, inputs: list[Side], background: str) -> list[Side]:
    """One side on a fresh daemon: the roundtable, then the chain. On one daemon for all
    sides, a one-by-one agent whose prompt is most of what a team agent's slot holds (the
    chain's first turns: same system prompt, same message) would take that slot over and find
    the team's prompt cached."""
    d = Daemon(config)
    try:
        put_agents(d, tokens, background)
        if how == "team":
            out = [team_run(d, kind, agents, message, turns) for kind, agents, message, turns in PARTS]
        else:
            out = [(one_by_one_cli if how == "cli" else one_by_one_grpc)(d, team) for team in inputs]
    finally:
        d.close()
    print(f"{how}: " + ", ".join(f"{kind} {s.seconds:.1f} s" for (kind, *_), s in zip(PARTS, out)), file=sys.stderr)
    return out


def sides(config: str, tokens: int, reps: int, background: str) -> dict[str, list[Side]]:
    """Per side (team, cli, grpc), the roundtable and the chain: of ``reps`` runs of each side,
    taking turns (the team's first run gives the others their inputs), the one of median wall
    time."""
    runs: dict[str, list[list[Side]]] = {"team": [side("team", config, tokens, [], background)], "cli": [], "grpc": []}
    for _ in range(reps):
        for how in ("cli", "grpc", "team"):
            if len(runs[how]) < reps:
                runs[how].append(side(how, config, tokens, runs["team"][0], background))
    return {
        how: [sorted((r[i] for r in got), key=lambda s: s.seconds)[len(got) // 2] for i in range(len(PARTS))] for how, got in runs.items()
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=64, help="max_tokens of every reply")
    ap.add_argument("--quick", action="store_true", help="replies of at most 32 tokens")
    ap.add_argument("--threads", type=int, default=2, help="llama.cpp threads (1 is steadier on a busy machine)")
    ap.add_argument("--reps", type=int, default=1, help="runs of each side, in turning order; the median is reported")
    ap.add_argument(
        "--brief",
        type=int,
        default=0,
        metavar="WORDS",
        help="a shared background of about WORDS words before each roundtable member's system prompt",
    )
    args = ap.parse_args()
    tokens = 32 if args.quick else args.tokens
    missing = [n for n in REAL if not (MODELS / n).exists()]
    if missing:
        raise SystemExit(f"missing {', '.join(missing)}: run `make models`")
    print(f"## Teams ({date.today().isoformat()})\n")
    print(
        f"Machine: {machine()}. SmolLM2-135M-Instruct Q4_1, {args.threads} thread{'s' if args.threads > 1 else ''}, n_ctx 2048, {SLOTS} slots (one per agent),"
    )
    print(f"temperature 0, seed 1, replies of at most {tokens} tokens; each side on a fresh enclaved", end="")
    print(f", the median of {args.reps} runs." if args.reps > 1 else ".")
    background = brief(args.brief) if args.brief else ""
    if background:
        print(f"Each roundtable member's system prompt starts with the same background of about {args.brief} words.")
    print()
    got = sides(CONFIG.format(slots=SLOTS, threads=args.threads), tokens, args.reps, background)
    print("\n".join(part("(a) Roundtable, 4 members × 3 rounds", got["team"][0], got["cli"][0], got["grpc"][0])) + "\n")
    print("\n".join(part("(b) Chain of 3 members", got["team"][1], got["cli"][1], got["grpc"][1])))


if __name__ == "__main__":
    main()
