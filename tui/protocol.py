"""The workbench's connection to enclaved: asyncio gRPC, apart from any widget.

The TUI attaches, it does not own: it shows what the daemon holds (agents, transcripts, turns
in progress via Watch) and sends turns with ``detach=true``, so quitting leaves them running.
"""

from __future__ import annotations

import asyncio
from contextlib import contextmanager
from pathlib import Path
from typing import AsyncIterator, Iterator

import grpc

from .v1 import agents_pb2, agents_pb2_grpc, chat_pb2, chat_pb2_grpc

CONNECT_TIMEOUT = 5.0
CALL_TIMEOUT = 30.0


class DaemonError(Exception):
    """A failed call, as one line for the screen."""


@contextmanager
def _one_line_errors() -> Iterator[None]:
    """A failed call becomes a DaemonError with the daemon's one-line message."""
    try:
        yield
    except grpc.aio.AioRpcError as err:
        raise DaemonError(f"{err.details()} [{err.code().name}]") from None


class DaemonClient:
    """Create it anywhere; ``connect`` it on the event loop that will use it (grpc.aio channels
    belong to the loop they were made on)."""

    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path
        self.channel: grpc.aio.Channel | None = None

    async def connect(self) -> None:
        self.channel = grpc.aio.insecure_channel(f"unix:{self.socket_path}")
        self.agents = agents_pb2_grpc.AgentsStub(self.channel)
        self.chat = chat_pb2_grpc.ChatStub(self.channel)
        try:
            await asyncio.wait_for(self.channel.channel_ready(), CONNECT_TIMEOUT)
        except TimeoutError:
            raise DaemonError(f"no enclaved answers at {self.socket_path}; start it with `enclaved`") from None

    async def close(self) -> None:
        if self.channel is not None:
            await self.channel.close()

    async def list_agents(self) -> list[agents_pb2.Agent]:
        with _one_line_errors():
            return list((await self.agents.ListAgents(agents_pb2.ListAgentsRequest(), timeout=CALL_TIMEOUT)).agents)

    async def transcript(self, agent: str) -> list[agents_pb2.TranscriptMessage]:
        with _one_line_errors():
            reply = await self.agents.GetTranscript(agents_pb2.GetTranscriptRequest(name=agent), timeout=CALL_TIMEOUT)
        return list(reply.messages)

    async def send(self, text: str, agents: list[str]) -> None:
        """Start a turn on one agent, or on several; its events arrive through ``watch``.

        The call is left once the daemon accepted it (the first event): with ``detach`` the
        turn runs on without this client.
        """
        if len(agents) == 1:
            call = self.chat.Chat(chat_pb2.ChatRequest(agent=agents[0], message=text, detach=True))
        else:
            call = self.chat.Broadcast(chat_pb2.BroadcastRequest(message=text, agents=agents, detach=True))
        try:
            with _one_line_errors():
                await call.read()
        finally:
            call.cancel()

    async def cancel(self, agent: str | None = None) -> int:
        request = chat_pb2.CancelRequest(agent=agent) if agent else chat_pb2.CancelRequest(all=True)
        with _one_line_errors():
            return len((await self.chat.Cancel(request, timeout=CALL_TIMEOUT)).cancelled_turn_ids)

    async def watch(self) -> AsyncIterator[chat_pb2.ChatEvent]:
        """Every agent's events, starting with the turns in progress."""
        call = self.chat.Watch(chat_pb2.WatchRequest())
        try:
            with _one_line_errors():
                async for event in call:
                    yield event
        finally:
            call.cancel()

