"""``enclave audit``: verify, export, tail and rotate the audit log.

Through the running daemon by default (so reading and exporting are themselves audited);
with ``--data DIR`` on the files, offline (daemon stopped, key file or
``$ENCLAVE_AUDIT_PASSPHRASE`` at hand), through ``enclaved.audit``'s own command line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Iterable

from enclave.client import Client, ClientError
from enclave_contract.v1 import audit_pb2

OFFLINE_ONLY = ("verify-key", "copy", "passphrase")
OFFLINE_TOOL = [sys.executable, "-m", "enclaved.audit"]  # the daemon's own tool, run, never imported
FILTERS = ("since", "until", "actor", "agent", "action", "outcome")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    a = sub.add_parser("audit", help="verify, export, tail or rotate the audit log (--data DIR: offline, on the files)")
    commands = a.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    v = commands.add_parser("verify", help="check the whole log; exit 1 with the first bad record")
    v.add_argument("--verify-key", help="offline: the verification key kept off the machine")
    e = commands.add_parser("export", help="decrypted records, one JSON object a line, oldest first")
    e.add_argument("--format", choices=["jsonl"], default="jsonl")
    t = commands.add_parser("tail", help="the newest records; -f keeps following")
    t.add_argument("-n", type=int, default=20, help="how many (default 20)")
    t.add_argument("-f", "--follow", action="store_true")
    commands.add_parser("rotate-key", help="a new data key for new records; old records keep theirs")
    for name in OFFLINE_ONLY:
        commands.add_parser(name, help=f"offline: see `python -m enclaved.audit {name} --help`", add_help=False)
    for p in (e, t):
        for name in FILTERS:
            p.add_argument(f"--{name}", default="", help="ISO 8601 time, UTC if no zone" if name in ("since", "until") else None)
    for p in (v, e, t):
        p.add_argument("--data", help="work on this data folder's files instead of through the daemon")
    a.set_defaults(fn=run)


def offline_argv(args: argparse.Namespace, extra: list[str]) -> list[str] | None:
    """The arguments for ``enclaved.audit``'s command line, or None to go through the daemon."""
    command = args.audit_command
    if command in OFFLINE_ONLY:
        return [command, *extra]
    if not getattr(args, "data", None):
        return None
    if command == "verify":
        return ["verify", "--data", args.data, *(["--verify-key", args.verify_key] if args.verify_key else [])]
    if command == "export":
        return ["export", "--data", args.data, *[x for name in FILTERS if getattr(args, name) for x in (f"--{name}", getattr(args, name))]]
    raise ClientError(f"`enclave audit {command}` works through the daemon; drop --data")


def run_offline_audit(argv: list[str]) -> int:
    """Run the daemon's offline audit tool on the files, as ``enclave audit``: the client never
    imports the daemon, so the audit core is reached as a program, with this terminal."""
    env = {**os.environ, "ENCLAVE_AUDIT_PROG": "enclave audit"}
    return subprocess.call([*OFFLINE_TOOL, *argv], env=env)


def run(client: Client, args: argparse.Namespace) -> int:
    query = audit_pb2.AuditQuery(**{name: getattr(args, name, "") for name in FILTERS})
    if args.audit_command == "verify":
        result = client.audit.Verify(audit_pb2.AuditVerifyRequest(), timeout=600)
        print(result.summary)
        return 0 if result.ok else 1
    if args.audit_command == "export":
        _print(client.audit.Export(audit_pb2.AuditExportRequest(query=query)))
        return 0
    if args.audit_command == "tail":
        if args.n < 0:
            raise ClientError("-n is how many of the newest records to print: 0 or more")
        if args.follow:
            _print(client.audit.Follow(audit_pb2.AuditFollowRequest(query=query, last=args.n)))
            return 0
        if args.n == 0:
            return 0
        total = client.audit.Count(audit_pb2.AuditCountRequest(query=query), timeout=60).count
        n = min(args.n, 1000)
        _print(client.audit.Rows(audit_pb2.AuditRowsRequest(query=query, offset=max(total - n, 0), limit=n), timeout=60).records)
        return 0
    key_id = client.audit.RotateKey(audit_pb2.AuditRotateKeyRequest(), timeout=60).key_id
    print(f"new records are encrypted with key {key_id}; older records keep theirs")
    return 0


def _print(records: Iterable[audit_pb2.AuditRecord]) -> None:
    for r in records:
        line = {
            "seq": r.seq,
            "time": r.time,
            "action": r.action,
            "actor": {
                "user": r.actor.user or None,
                "uid": None if r.actor.uid < 0 else r.actor.uid,
                "pid": None if r.actor.pid < 0 else r.actor.pid,
                "auth": r.actor.auth,
            },
            "agent": r.agent or None,
            "model": r.model or None,
            "turn": r.turn or None,
            "outcome": r.outcome,
            "payload": json.loads(r.payload_json or "{}"),
            "hash": r.hash,
        }
        sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
        sys.stdout.flush()
