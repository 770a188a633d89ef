"""A fuzzer for enclaved's gRPC surface: every RPC of the contract, called with random and
boundary field values, raw garbage, another method's message, tiny deadlines, cancelled
streams and bogus peer tokens.

``Fuzzer.run(n)`` makes ``n`` calls and returns what came back, by status code. The daemon
passes when no answer is UNKNOWN or INTERNAL (each is a bug: a message the daemon did not
expect), its log holds no traceback, and it still serves a normal chat afterwards; the
caller checks those (tests/hardening/test_fuzz.py, and the long run in bench/fuzz_daemon.py).
Everything is drawn from one seeded ``random.Random``, so a failing run can be repeated.
"""

from __future__ import annotations

import random
import string
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from enclave.peer import PeerSession, handshake
from enclave_contract.handshake import PEER_METADATA_KEY
from enclave_contract.v1 import agents_pb2, audit_pb2, chat_pb2, keys_pb2, models_pb2, status_pb2

MODULES = (agents_pb2, audit_pb2, chat_pb2, keys_pb2, models_pb2, status_pb2)
BAD_CODES = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}

_INT_EDGES = (0, 1, -1, 2, 7, 100, 2**31 - 1, -(2**31))
_INT64_EDGES = (*_INT_EDGES, 2**63 - 1, -(2**63))
_UINT_EDGES = (0, 1, 2**32 - 1)
_FLOAT_EDGES = (0.0, -0.0, 1.0, -1.0, 0.5, 1e-9, 1e38, -1e38, float("nan"), float("inf"), float("-inf"))
_STRING_EDGES = (
    "",
    " ",
    "*",
    "chat.*",
    "..",
    "../../etc/passwd",
    "\x00",
    "a\nb",
    "\u202e\u0000\ud7ff",
    "é" * 300,
    "x" * 70_000,
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "2026-11-22",
    "2026-13-45T99:99:99Z",
    "ok",
    "denied",
)


def methods() -> list[MethodDescriptor]:
    """Every RPC of the contract (22 of them)."""
    return [m for mod in MODULES for service in mod.DESCRIPTOR.services_by_name.values() for m in service.methods]


@dataclass
class Outcome:
    codes: Counter[str] = field(default_factory=Counter)
    bad: list[str] = field(default_factory=list)  # "method kind: code details" for UNKNOWN/INTERNAL

    def add(self, method: str, kind: str, code: grpc.StatusCode, details: str | None) -> None:
        self.codes[code.name] += 1
        if code in BAD_CODES:
            self.bad.append(f"{method} ({kind}): {code.name} {details}")


class Fuzzer:
    def __init__(self, socket_path: Path, *, seed: int, names: Sequence[str], models: Sequence[str], spare: Sequence[str] = ()) -> None:
        """``names``: agent names to draw on (plus random ones); ``spare``: names never used, so
        the caller can check a normal chat on them afterwards."""
        self.rng = random.Random(seed)
        self.names = [n for n in names if n not in spare]
        self.models = list(models)
        self.spare = set(spare)
        self.socket_path = socket_path
        self.peer: PeerSession | None = handshake(socket_path)
        self.channel = grpc.insecure_channel(f"unix:{socket_path}")
        self.methods = methods()

    def close(self) -> None:
        self.channel.close()
        if self.peer is not None:
            self.peer.close()

    # --- one call --------------------------------------------------------------------------

    def run(self, calls: int) -> Outcome:
        outcome = Outcome()
        for _ in range(calls):
            method = self.rng.choice(self.methods)
            kind = self.rng.choices(
                ["fields", "garbage", "wrong-method", "tiny-deadline", "cancelled", "bogus-token", "no-token"],
                weights=[10, 2, 2, 2, 2, 1, 1],
            )[0]
            code, details = self._call(method, kind)
            outcome.add(method.full_name, kind, code, details)
        return outcome

    def _call(self, method: MethodDescriptor, kind: str) -> tuple[grpc.StatusCode, str | None]:
        path = f"/{method.containing_service.full_name}/{method.name}"
        payload = self._payload(method, kind)
        token = self.peer.token if self.peer is not None else None
        metadata: list[tuple[str, str]] = []
        if kind == "bogus-token":
            metadata = [(PEER_METADATA_KEY, self.rng.choice(["", "x", "t" * 43, "a" * 5000]))]
        elif kind != "no-token" and token:
            metadata = [(PEER_METADATA_KEY, token)]
        # streams that wait for events (Watch, Follow) end at their deadline: keep it short
        timeout = self.rng.uniform(0.001, 0.05) if kind == "tiny-deadline" else (1.0 if method.server_streaming else 5.0)
        try:
            if method.server_streaming:
                stream = self.channel.unary_stream(path, request_serializer=None, response_deserializer=None)
                call = stream(payload, timeout=timeout, metadata=metadata)
                limit = 0 if kind == "cancelled" else self.rng.randint(1, 30)
                for i, _ in enumerate(call):
                    if i + 1 >= limit:
                        break
                call.cancel()
                return grpc.StatusCode.OK, None
            unary = self.channel.unary_unary(path, request_serializer=None, response_deserializer=None)
            unary(payload, timeout=timeout, metadata=metadata)
            return grpc.StatusCode.OK, None
        except grpc.RpcError as err:
            return err.code(), err.details()

    def _payload(self, method: MethodDescriptor, kind: str) -> bytes:
        if kind == "garbage":
            return self.rng.randbytes(self.rng.randint(1, 64))
        descriptor = method.input_type
        if kind == "wrong-method":
            descriptor = self.rng.choice(self.methods).output_type
        return self.message(descriptor).SerializeToString()

    # --- messages --------------------------------------------------------------------------

    def message(self, descriptor: Descriptor, depth: int = 0) -> Message:
        msg = GetMessageClass(descriptor)()
        for f in descriptor.fields:
            if self.rng.random() < 0.35:
                continue  # left unset
            if f.is_repeated:
                values = [self._value(f, depth) for _ in range(self.rng.choice((0, 1, 2, 3, 40)))]
                if f.type == FieldDescriptor.TYPE_MESSAGE:
                    for v in values:
                        getattr(msg, f.name).add().CopyFrom(v)
                else:
                    getattr(msg, f.name).extend(values)
            elif f.type == FieldDescriptor.TYPE_MESSAGE:
                if depth < 3:
                    getattr(msg, f.name).CopyFrom(self.message(f.message_type, depth + 1))
            else:
                setattr(msg, f.name, self._value(f, depth))
        return msg

    def _value(self, f: FieldDescriptor, depth: int) -> Any:
        r = self.rng
        t = f.type
        if t == FieldDescriptor.TYPE_MESSAGE:
            return self.message(f.message_type, depth + 1)
        if t == FieldDescriptor.TYPE_STRING:
            return self._string(f.name)
        if t == FieldDescriptor.TYPE_BYTES:
            return r.randbytes(r.randint(0, 32))
        if t == FieldDescriptor.TYPE_BOOL:
            return r.random() < 0.5
        if t in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
            return r.choice(_FLOAT_EDGES) if r.random() < 0.6 else r.uniform(-10, 10)
        if t == FieldDescriptor.TYPE_ENUM:
            return r.choice([v.number for v in f.enum_type.values] + [99, -1])
        if t in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
            return r.choice(_UINT_EDGES) if r.random() < 0.6 else r.randint(0, 1000)
        if t in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
            return r.choice((*_UINT_EDGES, 2**64 - 1))
        if t in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED64):
            return r.choice(_INT64_EDGES) if r.random() < 0.6 else r.randint(-1000, 1000)
        return r.choice(_INT_EDGES) if r.random() < 0.6 else r.randint(-1000, 1000)

    def _string(self, field_name: str) -> str:
        r = self.rng
        roll = r.random()
        if field_name in ("name", "agent", "agents", "to") and roll < 0.6 and self.names:
            return r.choice(self.names)
        if field_name == "model" and roll < 0.6 and self.models:
            return r.choice(self.models)
        if roll < 0.8:
            value = r.choice(_STRING_EDGES)
        else:
            value = "".join(r.choice(string.printable) for _ in range(r.randint(1, 40)))
        return "fuzz" + value if value in self.spare else value
