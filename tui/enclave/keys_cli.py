"""``enclave keys create|list|revoke``: the API keys of the daemon's HTTP listener."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

from enclave.client import Client
from enclave_contract.v1 import keys_pb2


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = sub.add_parser("keys", help="API keys for the daemon's OpenAI-compatible HTTP API")
    actions = s.add_subparsers(dest="keys_action", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="make a key and print it (once: only its hash is kept)")
    create.add_argument("name", metavar="NAME", help="who or what uses the key; the audit log shows it as the actor")
    listing = actions.add_parser("list", help="list the keys (names, never the keys)")
    listing.add_argument("--json", action="store_true")
    actions.add_parser("revoke", help="revoke a key at once").add_argument("name", metavar="NAME")
    s.set_defaults(fn=cmd_keys)


def cmd_keys(client: Client, args: argparse.Namespace) -> int:
    if args.keys_action == "create":
        made = client.keys.CreateKey(keys_pb2.CreateKeyRequest(name=args.name), timeout=30)
        print(made.secret)
        print(f"key {made.key.name!r} made; it is shown only now: store it where its user can read it", file=sys.stderr)
    elif args.keys_action == "revoke":
        client.keys.RevokeKey(keys_pb2.RevokeKeyRequest(name=args.name), timeout=30)
        print(f"revoked {args.name}")
    else:
        keys = client.keys.ListKeys(keys_pb2.ListKeysRequest(), timeout=30).keys
        if args.json:
            print(json.dumps([{"name": k.name, "created": _when(k.created_unix), "hint": k.hint} for k in keys], indent=2))
        elif not keys:
            print("no API keys; `enclave keys create NAME` makes one")
        else:
            width = max(len(k.name) for k in keys)
            print(f"{'NAME'.ljust(width)}  CREATED (UTC)        HASH")
            for k in keys:
                print(f"{k.name.ljust(width)}  {_when(k.created_unix)}  {k.hint}…")
    return 0


def _when(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%d %H:%M:%S")
