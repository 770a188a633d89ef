"""``enclave agent put|clear|delete`` and ``enclave transcript``: the workbench's agent actions
for scripts.

``agent put`` creates an agent, or edits one: what is not given keeps its current value (for
a new agent, the daemon's default)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from enclave.client import Client, ClientError
from enclave.text import safe_text
from enclave_contract.v1 import agents_pb2

# flag → SamplingParams field, and the flag's type
SAMPLING_FLAGS: dict[str, tuple[str, type]] = {
    "--temperature": ("temperature", float),
    "--top-k": ("top_k", int),
    "--top-p": ("top_p", float),
    "--min-p": ("min_p", float),
    "--repeat-penalty": ("repeat_penalty", float),
    "--seed": ("seed", int),
    "--max-tokens": ("max_tokens", int),
}
ROLES = {agents_pb2.ROLE_SYSTEM: "system", agents_pb2.ROLE_USER: "user", agents_pb2.ROLE_ASSISTANT: "assistant"}


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = sub.add_parser("agent", help="create or edit an agent, clear its conversation, or delete it")
    actions = s.add_subparsers(dest="agent_action", metavar="ACTION", required=True)
    put = actions.add_parser("put", help="create the agent, or change what is given (its conversation stays)")
    put.add_argument("name", metavar="AGENT")
    put.add_argument("--model", help="the model's name (required for a new agent)")
    system = put.add_mutually_exclusive_group()
    system.add_argument("--system", help="the system prompt")
    system.add_argument("--system-file", type=Path, metavar="FILE", help="the system prompt from a file ('-': standard input)")
    for flag, (_, kind) in SAMPLING_FLAGS.items():
        put.add_argument(flag, type=kind)
    put.add_argument("--stop", action="append", metavar="TEXT", help="a stop string; repeat for several (replaces the old ones)")
    put.add_argument(
        "--fallbacks",
        metavar="A,B",
        help="models that serve its turns, in order, when its own cannot (local names or model@engine); '' clears them",
    )
    for name, what in (("clear", "empty the agent's conversation (also one marked damaged)"), ("delete", "delete the agent")):
        actions.add_parser(name, help=what).add_argument("name", metavar="AGENT")
    s.set_defaults(fn=cmd_agent)

    t = sub.add_parser("transcript", help="print an agent's conversation")
    t.add_argument("name", metavar="AGENT")
    t.add_argument("--json", action="store_true", help="one JSON object per message")
    t.set_defaults(fn=cmd_transcript)


def cmd_agent(client: Client, args: argparse.Namespace) -> int:
    if args.agent_action == "put":
        return _put(client, args)
    if args.agent_action == "clear":
        client.agents.ClearTranscript(agents_pb2.ClearTranscriptRequest(name=args.name), timeout=30)
        print(f"cleared {args.name}'s conversation")
    else:
        client.agents.DeleteAgent(agents_pb2.DeleteAgentRequest(name=args.name), timeout=60)
        print(f"deleted {args.name}")
    return 0


def _put(client: Client, args: argparse.Namespace) -> int:
    agents = client.agents.ListAgents(agents_pb2.ListAgentsRequest(), timeout=30).agents
    current = next((a for a in agents if a.name == args.name), None)
    agent = agents_pb2.Agent(name=args.name)
    if current is not None:
        agent.model, agent.system = current.model, current.system
        agent.sampling.CopyFrom(current.sampling)
        agent.fallbacks.extend(current.fallbacks)
    elif not args.model:
        raise ClientError(f"there is no agent {args.name!r} yet; say which model it uses: --model NAME")
    if args.model:
        agent.model = args.model
    if args.system is not None:
        agent.system = args.system
    elif args.system_file is not None:
        agent.system = _read(args.system_file)
    for _, (field, _kind) in SAMPLING_FLAGS.items():
        value = getattr(args, field)
        if value is not None:
            setattr(agent.sampling, field, value)
    if args.stop is not None:
        agent.sampling.ClearField("stop")
        agent.sampling.stop.extend(args.stop)
    if args.fallbacks is not None:
        del agent.fallbacks[:]
        agent.fallbacks.extend(f.strip() for f in args.fallbacks.split(",") if f.strip())
    created = client.agents.PutAgent(agents_pb2.PutAgentRequest(agent=agent), timeout=30).created
    then = f", then {', '.join(agent.fallbacks)}" if agent.fallbacks else ""
    print(f"{'created' if created else 'updated'} {args.name} (model {agent.model}{then})")
    return 0


def _read(path: Path) -> str:
    if str(path) == "-":
        return sys.stdin.read()
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ClientError(f"cannot read the system prompt from {path} ({getattr(exc, 'strerror', None) or exc})") from None


def cmd_transcript(client: Client, args: argparse.Namespace) -> int:
    messages = client.agents.GetTranscript(agents_pb2.GetTranscriptRequest(name=args.name), timeout=30).messages
    for m in messages:
        role = ROLES.get(m.role, "unknown")
        if args.json:
            line = {
                "role": role,
                "content": m.content,
                "turn_id": m.turn_id or None,
                "finish_reason": m.finish_reason or None,
                # a reply's: how many of the oldest messages its prompt left out to fit the context
                "dropped_messages": m.dropped_messages if m.role == agents_pb2.ROLE_ASSISTANT else None,
            }
            print(json.dumps(line, ensure_ascii=False))
        else:
            text = m.content or (f"(no reply: {m.finish_reason})" if m.finish_reason else "")
            print(f"{role}: {safe_text(text)}\n")
    return 0
