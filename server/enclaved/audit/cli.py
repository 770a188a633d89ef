"""The audit command line, for operators and auditors; works on the files, no daemon needed.

    python -m enclaved.audit verify --data DIR [--verify-key FILE] [--checkpoint FILE]...
    python -m enclaved.audit export --data DIR [--since T] [--until T] [--actor U] [--agent A] [--action X] [--outcome O]
    python -m enclaved.audit verify-key --data DIR
    python -m enclaved.audit copy --data DIR --to DEST
    python -m enclaved.audit passphrase --data DIR [--remove]

The passphrase, if audit.key has one, comes from $ENCLAVE_AUDIT_PASSPHRASE; ``passphrase``
reads the new one from $ENCLAVE_AUDIT_NEW_PASSPHRASE or asks twice. ``enclave audit …`` can
call ``main(argv, prog="enclave audit")``. Exit status: 0 ok, 1 verification failed, 2 the
command could not run (each failure is one line on stderr, never a traceback).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path

from enclaved.audit.export import copy_log, export
from enclaved.audit.files import AuditPaths, DirLock, read_private
from enclaved.audit.keys import DEFAULT_SCRYPT_N, change_passphrase, passphrase_from_env
from enclaved.audit.records import Filters
from enclaved.audit.times import parse_time
from enclaved.audit.verify import verify
from enclaved.errors import EnclaveError

NEW_PASSPHRASE_ENV = "ENCLAVE_AUDIT_NEW_PASSPHRASE"


def parse_args(argv: list[str] | None, prog: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=prog, description="Verify, export and copy the enclave audit log.")
    sub = p.add_subparsers(dest="command", required=True)
    v = sub.add_parser("verify", help="check the whole log: chain, seals, checkpoints, payloads")
    v.add_argument("--verify-key", type=Path, help="the verification key kept off the machine (default: DIR/audit.verify)")
    v.add_argument("--checkpoint", type=Path, action="append", default=[], help="another checkpoint to hold the log against; repeat")
    e = sub.add_parser("export", help="decrypted records as JSON lines, oldest first")
    e.add_argument("--since", type=parse_time, help="from this time (ISO 8601; UTC if no zone)")
    e.add_argument("--until", type=parse_time, help="before this time")
    for name in ("actor", "agent", "action", "outcome"):
        e.add_argument(f"--{name}", help="only this " + name + (" (e.g. chat.* for a prefix)" if name == "action" else ""))
    sub.add_parser("verify-key", help="print the verification key, to keep off this machine")
    c = sub.add_parser("copy", help="a consistent copy for an auditor (without audit.verify)")
    c.add_argument("--to", type=Path, required=True, help="an empty folder")
    w = sub.add_parser("passphrase", help="protect audit.key with a passphrase, change it, or remove it")
    w.add_argument("--remove", action="store_true", help="store audit.key unencrypted (mode 0600)")
    for parser in (v, e, sub.choices["verify-key"], c, w):
        parser.add_argument("--data", type=Path, required=True, help="the daemon's data folder")
    return p.parse_args(argv)


def _new_passphrase() -> str:
    new = os.environ.get(NEW_PASSPHRASE_ENV)
    if new is None:
        new = getpass.getpass("new audit passphrase: ")
        if new != getpass.getpass("again: "):
            raise EnclaveError("the passphrases differ; nothing was changed")
    if not new:
        raise EnclaveError("the new passphrase is empty; nothing was changed (use --remove to store the key unencrypted)")
    return new


def run(args: argparse.Namespace) -> int:
    paths = AuditPaths(args.data)
    if args.command == "verify":
        result = verify(args.data, passphrase=passphrase_from_env(), verify_key=args.verify_key, checkpoints=args.checkpoint)
        print(result.summary)
        return 0 if result.ok else 1
    if args.command == "export":
        filters = Filters(args.since, args.until, args.actor, args.agent, args.action, args.outcome)
        for record in export(args.data, passphrase=passphrase_from_env(), filters=filters):
            sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
        return 0
    if args.command == "verify-key":
        sys.stdout.write(read_private(paths.verify).decode("ascii"))
        return 0
    if args.command == "copy":
        for path in copy_log(args.data, args.to):
            print(path)
        print("not copied: audit.verify (verify the copy with the key kept off the machine: --verify-key FILE)")
        return 0
    lock = DirLock(paths.lock)  # the daemon keeps the key in memory and may rewrite the file
    try:
        change_passphrase(paths.key, passphrase_from_env(), None if args.remove else _new_passphrase(), DEFAULT_SCRYPT_N)
    finally:
        lock.release()
    print(f"{paths.key}: " + ("stored unencrypted" if args.remove else "protected by the new passphrase"))
    return 0


def main(argv: list[str] | None = None, prog: str = "python -m enclaved.audit") -> int:
    args = parse_args(argv, prog)
    try:
        return run(args)
    except EnclaveError as exc:
        print(f"{prog}: {exc.message}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{prog}: {exc.strerror or type(exc).__name__}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
