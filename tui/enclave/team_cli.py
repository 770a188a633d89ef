"""``enclave teams``, ``enclave team put|delete|run``: teams of agents for scripts.

``team put`` creates a team, or edits one: what is not given keeps its current value.
``team run`` prints each member's reply as lines prefixed by the member; the run's own events
(start, the guard's verdicts, the end) go to standard error, and a director's choices and a
guard's answers only show as who speaks next and as the verdict. With ``--json``, one JSON object
per event, the last one the run's ending with its usage. With ``--detach``, it prints the run's
id and leaves it running (``enclave cancel --run ID`` stops it)."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable
from typing import Any

from google.protobuf import json_format

from enclave.client import Client, ClientError
from enclave.text import plural, safe_text, seconds
from enclave_contract.v1 import chat_pb2, teams_pb2

KINDS = ("chain", "roundtable", "director", "escalate")
CLEAN_ENDS = ("done", "stop_text", "max_turns", "max_tokens")  # exit 0; the others exit 1
_ENUMS = re.compile(r"^(RUN_END_|TURN_PHASE_|FINISH_REASON_)")


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = sub.add_parser("teams", help="list teams")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_teams)
    s = sub.add_parser("team", help="create or edit a team, delete it, or run it")
    actions = s.add_subparsers(dest="team_action", metavar="ACTION", required=True)
    put = actions.add_parser("put", help="create the team, or change what is given")
    put.add_argument("name", metavar="TEAM")
    put.add_argument("--kind", choices=KINDS)
    put.add_argument("--members", metavar="A,B,C", help="the agents, in speaking order (escalate: smallest tier first)")
    put.add_argument("--director", metavar="AGENT", help="kind director: the agent that chooses who speaks")
    put.add_argument("--max-turns", type=int, help="member turns per run (default 8)")
    put.add_argument("--max-tokens", type=int, help="generated tokens per run (default 4000)")
    put.add_argument("--timeout", metavar="TIME", help='wall time per run, like "300s" or "5m" (default 300s)')
    put.add_argument("--stop-text", metavar="TEXT", help="a member reply containing it ends the run")
    put.add_argument("--instruction", action="append", metavar="MEMBER=TEXT", help="put TEXT before MEMBER's input; repeat for several")
    put.add_argument("--guard", metavar="AGENT", help="the agent that checks the input and/or each reply ('' removes it)")
    put.add_argument("--guard-output", choices=("hold", "after", "none"), help="hold replies until allowed (default), flag after, or none")
    put.add_argument("--guard-on-block", choices=("stop", "skip"), help="a block stops the run (default) or skips the reply")
    put.add_argument("--no-guard-input", action="store_true", help="the guard does not check the run's message")
    put.add_argument("--guard-timeout", metavar="TIME", help='a check that takes longer blocks, like "30s" (default 60s)')
    actions.add_parser("delete", help="delete the team").add_argument("name", metavar="TEAM")
    run = actions.add_parser("run", help="run the team on a message; lines are prefixed by the member that speaks")
    run.add_argument("name", metavar="TEAM")
    run.add_argument("message", metavar="MESSAGE", help="the message; '-' reads standard input")
    run.add_argument("--json", action="store_true", help="one JSON object per event; the last has the ending and usage")
    run.add_argument("--detach", action="store_true", help="print the run's id and leave it running")
    s.set_defaults(fn=cmd_team)


def cmd_teams(client: Client, args: argparse.Namespace) -> int:
    teams = client.teams.ListTeams(teams_pb2.ListTeamsRequest(), timeout=30).teams
    if args.json:
        print(json.dumps([_dict(t) for t in teams], indent=2))
        return 0
    rows = [["NAME", "KIND", "MEMBERS", "LIMITS", "GUARD", "BUSY"]]
    for t in teams:
        members = ",".join(t.members) + (f" (director {t.director})" if t.director else "")
        limits = f"{t.max_turns} turns, {t.max_tokens} tokens, {t.timeout_seconds:g}s"
        guard = f"{t.guard.agent} ({t.guard.output}, {t.guard.on_block})" if t.HasField("guard") else ""
        rows.append([t.name, t.kind, members, limits, guard, "yes" if t.busy else ""])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    return 0


def cmd_team(client: Client, args: argparse.Namespace) -> int:
    if args.team_action == "put":
        return _put(client, args)
    if args.team_action == "delete":
        client.teams.DeleteTeam(teams_pb2.DeleteTeamRequest(name=args.name), timeout=30)
        print(f"deleted team {args.name}")
        return 0
    message = sys.stdin.read() if args.message == "-" else args.message
    call = client.teams.Run(teams_pb2.RunTeamRequest(team=args.name, message=message, detach=args.detach))
    try:
        if args.detach:
            return _detached(call, args.json)
        return _follow(call, args.json)
    except KeyboardInterrupt:
        call.cancel()  # the run stops with the client
        print("", file=sys.stderr)
        return 130


def _put(client: Client, args: argparse.Namespace) -> int:
    teams = client.teams.ListTeams(teams_pb2.ListTeamsRequest(), timeout=30).teams
    team = teams_pb2.Team(name=args.name)
    current = next((t for t in teams if t.name == args.name), None)
    if current is not None:
        team.CopyFrom(current)
        team.ClearField("busy")
    elif not args.kind or not args.members:
        raise ClientError(f"there is no team {args.name!r} yet; give it --kind and --members")
    if args.kind:
        team.kind = args.kind
    if args.members is not None:
        team.ClearField("members")
        team.members.extend(m.strip() for m in args.members.split(",") if m.strip())
    for flag, field in (("director", "director"), ("stop_text", "stop_text"), ("max_turns", "max_turns"), ("max_tokens", "max_tokens")):
        if getattr(args, flag) is not None:
            setattr(team, field, getattr(args, flag))
    if args.timeout is not None:
        team.timeout_seconds = _seconds("--timeout", args.timeout)
    for item in args.instruction or []:
        member, sep, text = item.partition("=")
        if not sep:
            raise ClientError(f"--instruction {item!r}: write it as MEMBER=TEXT")
        team.instructions[member.strip()] = text
    _put_guard(team, args)
    created = client.teams.PutTeam(teams_pb2.PutTeamRequest(team=team), timeout=30).created
    print(f"{'created' if created else 'updated'} team {args.name} ({team.kind}: {', '.join(team.members)})")
    return 0


def _put_guard(team: teams_pb2.Team, args: argparse.Namespace) -> None:
    if args.guard == "":
        team.ClearField("guard")
        return
    if args.guard is not None:
        if not team.HasField("guard"):
            team.guard.CopyFrom(teams_pb2.TeamGuard(input=True, output="hold", on_block="stop"))
        team.guard.agent = args.guard
    changes = args.guard_output is not None or args.guard_on_block is not None or args.no_guard_input or args.guard_timeout is not None
    if changes and not team.HasField("guard"):
        raise ClientError("the team has no guard; name one with --guard AGENT")
    if args.guard_output is not None:
        team.guard.output = args.guard_output
    if args.guard_on_block is not None:
        team.guard.on_block = args.guard_on_block
    if args.no_guard_input:
        team.guard.input = False
    if args.guard_timeout is not None:
        team.guard.timeout_seconds = _seconds("--guard-timeout", args.guard_timeout)


def _seconds(flag: str, text: str) -> float:
    try:
        return seconds(text)
    except ValueError as exc:
        raise ClientError(f"{flag}: {exc}") from None


def _dict(message: Any) -> dict[str, Any]:
    data = json_format.MessageToDict(message, always_print_fields_with_no_presence=True, preserving_proto_field_name=True)
    return {k: _ENUMS.sub("", v).lower() if isinstance(v, str) and _ENUMS.match(v) else v for k, v in data.items()}


def _event(ev: chat_pb2.ChatEvent) -> dict[str, Any]:
    kind = ev.WhichOneof("kind") or ""
    body = _dict(getattr(ev, kind)) if kind else {}
    return {"event": kind, "run_id": ev.run_id, "step": ev.step, "agent": ev.agent, "turn_id": ev.turn_id, **body}


def _detached(events: Iterable[chat_pb2.ChatEvent], as_json: bool) -> int:
    for ev in events:
        if ev.HasField("run_started"):
            print(json.dumps(_event(ev)) if as_json else ev.run_id, flush=True)
            return 0
    raise ClientError("the run did not start")


def _follow(events: Iterable[chat_pb2.ChatEvent], as_json: bool) -> int:
    partial: dict[str, str] = {}
    members: set[str] = set()  # whose text is printed: a director's choices and a guard's verdicts are not replies

    def flush(agent: str) -> None:
        rest = partial.pop(agent, "")
        if rest:
            print(f"[{agent}] {safe_text(rest)}", flush=True)

    for ev in events:
        kind = ev.WhichOneof("kind")
        if as_json:
            print(json.dumps(_event(ev)), flush=True)
        elif kind == "delta" and ev.agent in members:
            *lines, partial[ev.agent] = (partial.get(ev.agent, "") + ev.delta.text).split("\n")
            for line in lines:
                print(f"[{ev.agent}] {safe_text(line)}", flush=True)
        elif kind == "run_started":
            r = ev.run_started
            members = set(r.members)
            print(f"enclave: run {ev.run_id} of team {r.team} ({r.kind}: {', '.join(r.members)})", file=sys.stderr)
        elif kind == "guard_verdict":
            v = ev.guard_verdict
            what = f"the reply of {v.checked}" if v.checked else "the message"
            verdict = "allows" if v.allowed else "blocks"
            print(f"enclave: guard {v.guard} {verdict} {what}: {safe_text(v.reason)}", file=sys.stderr)
        elif kind in ("finished", "error"):
            flush(ev.agent)
            if kind == "error":
                print(f"enclave: [{ev.agent}] {safe_text(ev.error.message)}", file=sys.stderr)
        if kind == "run_finished":
            end = ev.run_finished
            reason = chat_pb2.RunEnd.Name(end.reason).removeprefix("RUN_END_").lower()
            if not as_json:
                tokens = end.usage.completion_tokens
                print(
                    f"enclave: run ended: {reason} ({plural(end.turns, 'turn')}, {plural(tokens, 'token')}): {safe_text(end.message)}",
                    file=sys.stderr,
                )
            return 0 if reason in CLEAN_ENDS else 1
    raise ClientError("the run's stream ended before the run did; see `enclave audit tail`")
