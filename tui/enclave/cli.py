"""``enclave``: plain subcommands for scripts and SSH sessions.

Every command takes ``--socket`` (default: ``$ENCLAVE_SOCKET`` and the daemon's defaults).
Failures exit non-zero with one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO, cast

import grpc
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from enclave.agent_cli import add_parsers as add_agent_parsers
from enclave.audit_cli import OFFLINE_ONLY, offline_argv, run_offline_audit
from enclave.audit_cli import add_parser as add_audit_parser
from enclave.client import Client, ClientError
from enclave.keys_cli import add_parser as add_keys_parser
from enclave.service import add_parser as add_service_parser
from enclave.service import cmd_service
from enclave.team_cli import add_parsers as add_team_parsers
from enclave.text import human_bytes, kept_states, plural, safe_text
from enclave_contract.paths import resolve_socket
from enclave_contract.v1 import agents_pb2, chat_pb2, models_pb2, status_pb2, teams_pb2

_ENUM_PREFIXES = ("MODEL_STATE_", "TURN_PHASE_", "FINISH_REASON_", "ROLE_")


def human_count(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def short_enum(value: str) -> str:
    for prefix in _ENUM_PREFIXES:
        if value.startswith(prefix):
            return value[len(prefix) :].lower()
    return value


def to_dict(message: Message) -> dict[str, Any]:
    """A message as JSON-ready dict: proto field names, defaults included, short enum names,
    and 64-bit integers as numbers (proto's JSON writes them as strings, which a script
    comparing ``.seq > 10`` or summing ``memory_bytes`` would trip over)."""
    data = json_format.MessageToDict(message, always_print_fields_with_no_presence=True, preserving_proto_field_name=True)
    return _plain(data, cast(Descriptor, message.DESCRIPTOR))


_INT64 = {
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED64,
    FieldDescriptor.TYPE_SFIXED64,
}


def _plain(data: dict[str, Any], descriptor: Descriptor) -> dict[str, Any]:
    fields = descriptor.fields_by_name
    return {key: _value(value, fields[key]) if key in fields else value for key, value in data.items()}


def _value(value: Any, field: FieldDescriptor) -> Any:
    if isinstance(value, list):  # a repeated field
        return [_value(v, field) for v in value]
    kind = field.message_type
    if kind is not None and not kind.GetOptions().map_entry:
        return _plain(value, kind)
    if field.type == FieldDescriptor.TYPE_ENUM and isinstance(value, str):
        return short_enum(value)
    if field.type in _INT64:
        return int(value)
    return value  # text stays as written, even when it looks like an enum name


def print_table(rows: list[list[str]], out: TextIO = sys.stdout) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() + "\n")


# ---- commands ---------------------------------------------------------------------------------


def print_replicas(model: str, replicas: Iterable[models_pb2.EngineReplica]) -> None:
    """A remote model's replicas, one line each."""
    for r in replicas:
        health = "healthy" if r.healthy else "unhealthy"
        print(
            f"{model} replica {r.url}: {health}, circuit {r.circuit}, {r.in_flight} in flight, "
            f"first token p50 {r.latency_p50_ms:.0f} ms p95 {r.latency_p95_ms:.0f} ms"
        )


def cmd_models(client: Client, args: argparse.Namespace) -> int:
    models = client.models.ListModels(models_pb2.ListModelsRequest(), timeout=30).models
    if args.json:
        print(json.dumps([to_dict(m) for m in models], indent=2))
        return 0
    if not models:
        print("no models; put .gguf files in the daemon's models folder (`enclave make-model models/demo.gguf` makes one)")
        return 0
    rows = [["NAME", "STATE", "SIZE", "QUANT", "PARAMS", "TRAINED-CTX", "ARCH"]]
    for m in models:
        rows.append(
            [
                m.name,
                short_enum(models_pb2.ModelState.Name(m.state)),
                human_bytes(m.size_bytes),
                m.quantization,
                human_count(m.parameter_count),
                str(m.context_length),
                m.architecture,
            ]
        )
    print_table(rows)
    for m in models:
        if m.target:
            print(f"{m.name} → {m.target}")
        print_replicas(m.name, m.replicas)
    for m in models:
        if m.problem:
            print(f"{m.name}: {m.problem}", file=sys.stderr)
    return 0


def cmd_load(client: Client, args: argparse.Namespace) -> int:
    r = client.models.LoadModel(models_pb2.LoadModelRequest(name=args.name), timeout=600)
    evicted = f" (evicted: {', '.join(r.evicted)})" if r.evicted else ""
    print(f"{r.model.name} loaded in {r.load_seconds:.2f}s{evicted}")
    return 0


def cmd_unload(client: Client, args: argparse.Namespace) -> int:
    client.models.UnloadModel(models_pb2.UnloadModelRequest(name=args.name), timeout=60)
    print(f"{args.name} unloaded")
    return 0


def cmd_agents(client: Client, args: argparse.Namespace) -> int:
    agents = client.agents.ListAgents(agents_pb2.ListAgentsRequest(), timeout=30).agents
    if args.json:
        print(json.dumps([to_dict(a) for a in agents], indent=2))
        return 0
    rows = [["NAME", "MODEL", "TURNS", "BUSY", "SYSTEM"]]
    shown = any(a.fallbacks for a in agents)  # the column only where some agent has them
    if shown:
        rows[0].insert(2, "FALLBACKS")
    for a in agents:
        system = safe_text(a.system.replace("\n", " "))
        row = [a.name, a.model, str(a.turns), "yes" if a.busy else "", system[:50] + ("…" if len(system) > 50 else "")]
        if shown:
            row.insert(2, ",".join(a.fallbacks) or "-")
        rows.append(row)
    print_table(rows)
    for a in agents:
        if a.damage:
            print(f"{a.name}: transcript damaged ({safe_text(a.damage)}); `enclave agent clear {a.name}` starts it afresh")
    return 0


class _LinePrefixer:
    """Prints interleaved streams of several agents as whole lines prefixed by the agent."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.partial: dict[str, str] = {}

    def write(self, agent: str, text: str) -> None:
        buf = self.partial.get(agent, "") + text
        *lines, rest = buf.split("\n")
        for line in lines:
            self.out.write(f"[{agent}] {safe_text(line)}\n")
        self.partial[agent] = rest
        self.out.flush()

    def end(self, agent: str) -> None:
        rest = self.partial.pop(agent, "")
        if rest:
            self.out.write(f"[{agent}] {safe_text(rest)}\n")
            self.out.flush()


def _read_message(args: argparse.Namespace) -> str:
    return sys.stdin.read() if args.message == "-" else args.message


def cmd_chat(client: Client, args: argparse.Namespace) -> int:
    if args.all or args.to:
        if args.agent_or_message is None:
            raise ClientError("usage: enclave chat --all MESSAGE (or --to a,b MESSAGE)")
        args.message = args.agent_or_message if args.message is None else f"{args.agent_or_message} {args.message}"
        agents = [a for a in (args.to or "").split(",") if a]
        call = client.chat.Broadcast(chat_pb2.BroadcastRequest(message=_read_message(args), agents=agents, detach=args.detach))
        multi = True
    else:
        if args.agent_or_message is None or args.message is None:
            raise ClientError("usage: enclave chat AGENT MESSAGE (MESSAGE '-' reads standard input)")
        call = client.chat.Chat(chat_pb2.ChatRequest(agent=args.agent_or_message, message=_read_message(args), detach=args.detach))
        multi = False
    try:
        return _print_events(call, args.json, multi)
    except KeyboardInterrupt:
        call.cancel()
        print("", file=sys.stderr)
        return 130


def _print_events(events: Iterable[chat_pb2.ChatEvent], as_json: bool, multi: bool) -> int:
    failed = False
    prefixer = _LinePrefixer(sys.stdout)
    for ev in events:
        kind = ev.WhichOneof("kind")
        if as_json:
            body = to_dict(getattr(ev, kind))
            print(json.dumps({"event": kind, "agent": ev.agent, "turn_id": ev.turn_id, **body}), flush=True)
            failed |= kind == "error"
            continue
        if kind == "delta":
            if multi:
                prefixer.write(ev.agent, ev.delta.text)
            else:
                sys.stdout.write(safe_text(ev.delta.text))
                sys.stdout.flush()
        elif kind == "truncated":
            print(f"enclave: [{ev.agent}] {ev.truncated.dropped_messages} oldest messages left out to fit the context", file=sys.stderr)
        elif kind == "served" and ev.served.reason:
            print(f"enclave: [{ev.agent}] served by {ev.served.model} (its own model could not: {ev.served.reason})", file=sys.stderr)
        elif kind == "error":
            failed = True
            if multi:
                prefixer.end(ev.agent)
                print(f"enclave: [{ev.agent}] {ev.error.message}", file=sys.stderr)
        elif kind == "finished":
            if multi:
                prefixer.end(ev.agent)
            else:
                sys.stdout.write("\n")
            if ev.finished.finish_reason == chat_pb2.FINISH_REASON_CANCELLED:
                print(f"enclave: [{ev.agent}] cancelled", file=sys.stderr)
    return 1 if failed else 0


def cmd_cancel(client: Client, args: argparse.Namespace) -> int:
    if args.run:
        client.teams.Cancel(teams_pb2.CancelRunRequest(run_id=args.run), timeout=30)
        print(f"cancelled run {args.run}")
        return 0
    if args.all:
        req = chat_pb2.CancelRequest(all=True)
    elif args.agent:
        req = chat_pb2.CancelRequest(agent=args.agent)
    elif args.turn_id:
        req = chat_pb2.CancelRequest(turn_id=args.turn_id)
    else:
        raise ClientError("usage: enclave cancel TURN_ID | --agent NAME | --all | --run RUN_ID")
    ids = client.chat.Cancel(req, timeout=30).cancelled_turn_ids
    print(f"cancelled {plural(len(ids), 'turn')}" + (f": {', '.join(ids)}" if ids else ""))
    return 0


def cmd_status(client: Client, args: argparse.Namespace) -> int:
    redraw = args.watch and not args.json and sys.stdout.isatty()  # like top: in place, on a terminal
    snapshots = client.status.Status(status_pb2.StatusRequest(once=not args.watch, interval_seconds=args.interval))
    for frame, snap in enumerate(snapshots):
        if args.json:
            print(json.dumps(to_dict(snap)), flush=True)  # one JSON object a line
        elif redraw:
            text = io.StringIO()
            with contextlib.redirect_stdout(text):
                _print_status(snap)
            sys.stdout.write(_over_the_last(text.getvalue(), first=frame == 0))
            sys.stdout.flush()
        else:
            _print_status(snap)
            sys.stdout.flush()
    return 0


def _over_the_last(text: str, first: bool) -> str:
    """A frame that overwrites the one before from the top left: each line wiped to its end,
    the rest of the screen below. The screen is cleared once, for the first frame only: a clear
    for each would push every frame into the terminal's (and tmux's) scrollback."""
    lines = "".join(f"{line}\x1b[K\n" for line in text.splitlines())
    return ("\x1b[H\x1b[2J" if first else "\x1b[H") + lines + "\x1b[J"


def _print_status(snap: status_pb2.StatusSnapshot) -> None:
    print(f"enclaved {snap.version}  up {snap.uptime_seconds:.0f}s  agents {snap.agents}  active turns {snap.active_turns}")
    rows = [["MODEL", "STATE", "MEMORY", "CTX/AGENT", "SLOTS", "ACTIVE", "QUEUED", "TOK/S", "PROMPT TOK/S", "KEPT"]]
    for m in snap.models:
        rows.append(
            [
                m.name,
                short_enum(models_pb2.ModelState.Name(m.state)),
                human_bytes(m.memory_bytes) if m.memory_bytes else "-",
                str(m.context_size),
                str(m.sequence_slots),
                str(m.active_sequences),
                str(m.queued_requests),
                f"{m.decode_tokens_per_second:.1f}",
                f"{m.prompt_tokens_per_second:.1f}",
                kept_states(m.state_cache_entries, m.state_cache_bytes, m.state_cache_budget_bytes),
            ]
        )
    print_table(rows, sys.stdout)  # sys.stdout as it is now: the redraw captures it
    for m in snap.models:
        print_replicas(m.name, m.replicas)
        if m.problem:
            print(f"{m.name}: {m.problem}")
    timed = [m for m in snap.models if m.HasField("turn")]
    if timed:
        print()
        latency = [["MODEL", "FIRST TOKEN p50/p95/p99", "TURN p50/p95/p99"]]
        latency += [[m.name, _percentiles(m.first_token), _percentiles(m.turn)] for m in timed]
        print_table(latency, sys.stdout)


def _percentiles(p: status_pb2.Latency) -> str:
    return " / ".join(_seconds(v) for v in (p.p50_seconds, p.p95_seconds, p.p99_seconds))


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f}ms" if value < 1 else f"{value:.2f}s"


def cmd_make_model(args: argparse.Namespace) -> int:
    from enclave.modelmaker import make_model  # needs llama.cpp (for quantizing): only here

    out = Path(args.out)
    if out.exists() and not args.force:
        raise ClientError(f"{out} exists; pass --force to replace it")
    path = make_model(out, args.size, seed=args.seed)
    print(f"wrote {path} ({human_bytes(path.stat().st_size)})")
    return 0


def run_workbench(args: argparse.Namespace) -> int:
    from enclave.app import EnclaveApp
    from enclave.settings import SettingsError, load_settings

    try:
        settings = load_settings(args.config, EnclaveApp.binding_ids())
    except SettingsError as exc:
        raise ClientError(str(exc)) from None
    EnclaveApp(resolve_socket(args.socket), settings, spawn=False if args.no_spawn else None).run()
    return 0


def run_demo(tui: bool = True) -> int:
    """The workbench on a private daemon, the demo message already streaming in every pane;
    ``tui=False`` prints the replies instead (for scripts and terminals without a screen)."""
    from enclave.demo import DEMO_MESSAGE, demo_daemon

    with demo_daemon() as socket_path:
        if tui:
            from enclave.app import EnclaveApp

            EnclaveApp(socket_path, first_message=DEMO_MESSAGE, spawn=False).run()
            return 0
        print(f"enclaved is up on {socket_path}; three agents answer at once:\n", file=sys.stderr)
        print(f"> {DEMO_MESSAGE}\n")
        rc = main(["--socket", str(socket_path), "chat", "--all", DEMO_MESSAGE])
        main(["--socket", str(socket_path), "status"])
        return rc


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="enclave", description="Talk to enclaved: models, agents, chat, status.")
    p.add_argument("--socket", help=SOCKET_HELP)
    p.add_argument("--config", type=Path, help="workbench settings file (default: $ENCLAVE_CLIENT_CONFIG or ~/.config/enclave/client.toml)")
    p.add_argument("--no-spawn", action="store_true", help="workbench: do not start enclaved when none answers; wait for one")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", help="without one, the workbench opens")

    s = sub.add_parser("models", help="list the models the daemon can see")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_models)
    s = sub.add_parser("load", help="load a model into memory")
    s.add_argument("name")
    s.set_defaults(fn=cmd_load)
    s = sub.add_parser("unload", help="free a model's memory")
    s.add_argument("name")
    s.set_defaults(fn=cmd_unload)
    s = sub.add_parser("agents", help="list agents")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_agents)
    add_agent_parsers(sub)
    add_team_parsers(sub)

    s = sub.add_parser(
        "chat",
        help="send a message and print the reply as it streams",
        usage="enclave chat [--json] [--detach] (AGENT MESSAGE | --all MESSAGE | --to A,B MESSAGE)",
    )
    s.add_argument("agent_or_message", nargs="?", metavar="AGENT")
    s.add_argument("message", nargs="?", metavar="MESSAGE", help="the message; '-' reads standard input")
    s.add_argument("--all", action="store_true", help="send to every agent; lines are prefixed by agent name")
    s.add_argument("--to", metavar="A,B", help="send to these agents")
    s.add_argument("--json", action="store_true", help="one JSON object per event")
    s.add_argument("--detach", action="store_true", help="keep generating if this command is interrupted")
    s.set_defaults(fn=cmd_chat)

    s = sub.add_parser("cancel", help="cancel a turn, an agent's turn, all turns, or a team run")
    s.add_argument("turn_id", nargs="?")
    s.add_argument("--run", metavar="RUN_ID", help="a team run (enclave team run prints its id)")
    s.add_argument("--agent")
    s.add_argument("--all", action="store_true")
    s.set_defaults(fn=cmd_cancel)

    s = sub.add_parser("status", help="daemon and model status")
    s.add_argument("--json", action="store_true")
    s.add_argument("--watch", action="store_true", help="keep printing snapshots")
    s.add_argument("--interval", type=float, default=1.0)
    s.set_defaults(fn=cmd_status)

    s = sub.add_parser("demo", help="the workbench on a private daemon with the real demo models (make models) and four agents")
    s.add_argument("--no-tui", action="store_true", help="print the replies instead of opening the workbench")
    s.set_defaults(fn=None)

    add_audit_parser(sub)
    add_service_parser(sub)
    add_keys_parser(sub)

    s = sub.add_parser("make-model", help="write a random-weight llama GGUF (for demos, tests, benchmarks)")
    s.add_argument("out", metavar="OUT.gguf")
    s.add_argument("--size", choices=["tiny", "1b"], default="tiny")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--force", action="store_true", help="replace OUT if it exists")
    s.set_defaults(fn=None)
    _socket_everywhere(p)
    return p


SOCKET_HELP = "daemon socket (default: $ENCLAVE_SOCKET or the daemon's default path)"


def _socket_everywhere(parser: argparse.ArgumentParser) -> None:
    """Every command takes ``--socket`` before or after its name (the README says so): each
    subcommand's parser gets it too, without a default, so it never hides the outer one."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                if "--socket" not in child._option_string_actions:
                    child.add_argument("--socket", default=argparse.SUPPRESS, help=SOCKET_HELP)
                _socket_everywhere(child)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not (args.command == "audit" and args.audit_command in OFFLINE_ONLY):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        if args.command == "audit" and (offline := offline_argv(args, extra)) is not None:
            return run_offline_audit(offline)
        if args.command == "make-model":
            return cmd_make_model(args)
        if args.command == "service":
            return cmd_service(args)
        if args.command is None:
            return run_workbench(args)
        if args.command == "demo":
            return run_demo(tui=not args.no_tui)
        with Client(resolve_socket(args.socket)) as client:
            try:
                return args.fn(client, args)
            except grpc.RpcError as err:
                raise client.explain(err) from None
    except ClientError as exc:
        print(f"enclave: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
