"""A blocking gRPC client for enclaved over its Unix socket (used by the CLI)."""

from __future__ import annotations

from pathlib import Path

import grpc

from enclave.peer import PeerHandshakeError, handshake
from enclave_contract.paths import starting_pid
from enclave_contract.v1 import (
    agents_pb2_grpc,
    audit_pb2_grpc,
    chat_pb2_grpc,
    keys_pb2_grpc,
    models_pb2_grpc,
    status_pb2_grpc,
    teams_pb2_grpc,
)


class ClientError(Exception):
    """A failure to show the user as one line."""


class Client:
    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path
        try:
            self.peer = handshake(socket_path)  # so the daemon's audit log knows who this is
        except PeerHandshakeError as exc:
            raise ClientError(str(exc)) from None
        channel = grpc.insecure_channel(f"unix:{socket_path}")
        self.channel = grpc.intercept_channel(channel, *self.peer.interceptors()) if self.peer else channel
        self.models = models_pb2_grpc.ModelsStub(self.channel)
        self.agents = agents_pb2_grpc.AgentsStub(self.channel)
        self.chat = chat_pb2_grpc.ChatStub(self.channel)
        self.status = status_pb2_grpc.StatusStub(self.channel)
        self.audit = audit_pb2_grpc.AuditStub(self.channel)
        self.keys = keys_pb2_grpc.KeysStub(self.channel)
        self.teams = teams_pb2_grpc.TeamsStub(self.channel)

    def close(self) -> None:
        self.channel.close()
        if self.peer is not None:
            self.peer.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def explain(self, err: grpc.RpcError) -> ClientError:
        """One line for the user: the daemon's own message, or why it could not be reached."""
        code = err.code() if hasattr(err, "code") else None
        details = err.details() if hasattr(err, "details") else str(err)
        if code == grpc.StatusCode.UNAVAILABLE and (pid := starting_pid(self.socket_path)):
            return ClientError(f"enclaved is starting at {self.socket_path} (pid {pid}); try again in a moment")
        if code == grpc.StatusCode.UNAVAILABLE and not self.socket_path.exists():
            return ClientError(f"no enclaved is running at {self.socket_path}; start it with `enclaved`")
        if code == grpc.StatusCode.UNAVAILABLE and "connect" in (details or "").lower():
            return ClientError(f"cannot connect to enclaved at {self.socket_path} ({details}); is it running?")
        if code == grpc.StatusCode.CANCELLED:
            return ClientError("cancelled")
        name = code.name if code is not None else "ERROR"
        return ClientError(f"{details} [{name}]")
