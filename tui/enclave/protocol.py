"""The workbench's connection to enclaved: asyncio gRPC, apart from any widget; what it returns
is view models (``enclave.views``, converted in ``enclave.convert``), never protobuf.

The TUI attaches, it does not own: it shows what the daemon holds (agents, transcripts, turns
in progress via Watch) and sends turns with ``detach=true``, so quitting leaves them running.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc

from enclave import convert
from enclave.errors import DaemonError
from enclave.messages import WatchEvent
from enclave.peer import PeerHandshakeError, PeerSession, handshake
from enclave.views import AgentView, AuditQuery, AuditRecord, ChatMessage, LoadResult, ModelView, StatusView, TeamView, VerifyResult
from enclave_contract.paths import starting_pid
from enclave_contract.v1 import (
    agents_pb2,
    agents_pb2_grpc,
    audit_pb2,
    audit_pb2_grpc,
    chat_pb2,
    chat_pb2_grpc,
    models_pb2,
    models_pb2_grpc,
    status_pb2,
    status_pb2_grpc,
    teams_pb2,
    teams_pb2_grpc,
)

CONNECT_TIMEOUT = 5.0
CALL_TIMEOUT = 30.0
LOAD_TIMEOUT = 600.0  # a large model from a slow disk


@contextmanager
def _one_line_errors() -> Iterator[None]:
    """A failed call becomes a DaemonError with the daemon's one-line message."""
    try:
        yield
    except grpc.aio.AioRpcError as err:
        raise DaemonError(f"{err.details()} [{err.code().name}]", err.code().name) from None


async def _stream(call: Any) -> AsyncIterator[Any]:
    """A server stream's messages, failures as DaemonError; the call ends when the reader stops."""
    try:
        with _one_line_errors():
            async for message in call:
                yield message
    finally:
        call.cancel()


class DaemonClient:
    """Create it anywhere; ``connect`` it on the event loop that will use it (grpc.aio channels
    belong to the loop they were made on)."""

    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path
        self.channel: grpc.aio.Channel | None = None
        self.peer: PeerSession | None = None

    async def connect(self, timeout: float = CONNECT_TIMEOUT) -> None:
        """A fresh channel (closing any old one): after a daemon restart this is a new daemon.

        First the peer handshake, so the daemon's audit log records this client's user and pid
        (none if the daemon offers no handshake socket)."""
        await self.close()
        try:
            self.peer = await asyncio.to_thread(handshake, self.socket_path, min(timeout, CONNECT_TIMEOUT))
        except PeerHandshakeError as exc:
            raise DaemonError(str(exc)) from None
        interceptors = self.peer.aio_interceptors() if self.peer else None
        self.channel = grpc.aio.insecure_channel(f"unix:{self.socket_path}", interceptors=interceptors)
        self._agents = agents_pb2_grpc.AgentsStub(self.channel)
        self._chat = chat_pb2_grpc.ChatStub(self.channel)
        self._models = models_pb2_grpc.ModelsStub(self.channel)
        self._status = status_pb2_grpc.StatusStub(self.channel)
        self._audit = audit_pb2_grpc.AuditStub(self.channel)
        self._teams = teams_pb2_grpc.TeamsStub(self.channel)
        try:
            await asyncio.wait_for(self.channel.channel_ready(), timeout)
        except TimeoutError:
            if pid := starting_pid(self.socket_path):
                raise DaemonError(f"enclaved is starting at {self.socket_path} (pid {pid}); waiting for it") from None
            raise DaemonError(f"no enclaved answers at {self.socket_path}; start it with `enclaved`") from None

    async def close(self) -> None:
        if self.channel is not None:
            channel, self.channel = self.channel, None
            await channel.close()
        if self.peer is not None:
            peer, self.peer = self.peer, None
            peer.close()

    async def list_agents(self) -> list[AgentView]:
        with _one_line_errors():
            reply = await self._agents.ListAgents(agents_pb2.ListAgentsRequest(), timeout=CALL_TIMEOUT)
        return [convert.agent(a) for a in reply.agents]

    async def put_agent(self, agent: AgentView) -> AgentView:
        """Create the agent, or change its settings (its conversation stays)."""
        request = agents_pb2.PutAgentRequest(agent=convert.agent_message(agent))
        with _one_line_errors():
            reply = await self._agents.PutAgent(request, timeout=CALL_TIMEOUT)
        return convert.agent(reply.agent)

    async def delete_agent(self, name: str) -> None:
        with _one_line_errors():
            await self._agents.DeleteAgent(agents_pb2.DeleteAgentRequest(name=name), timeout=CALL_TIMEOUT)

    async def clear(self, name: str) -> None:
        with _one_line_errors():
            await self._agents.ClearTranscript(agents_pb2.ClearTranscriptRequest(name=name), timeout=CALL_TIMEOUT)

    async def list_models(self) -> list[ModelView]:
        with _one_line_errors():
            reply = await self._models.ListModels(models_pb2.ListModelsRequest(), timeout=CALL_TIMEOUT)
        return [convert.model(m) for m in reply.models]

    async def load_model(self, name: str) -> LoadResult:
        with _one_line_errors():
            reply = await self._models.LoadModel(models_pb2.LoadModelRequest(name=name), timeout=LOAD_TIMEOUT)
        return convert.load_result(reply)

    async def unload_model(self, name: str) -> None:
        with _one_line_errors():
            await self._models.UnloadModel(models_pb2.UnloadModelRequest(name=name), timeout=CALL_TIMEOUT)

    async def transcript(self, agent: str) -> list[ChatMessage]:
        with _one_line_errors():
            reply = await self._agents.GetTranscript(agents_pb2.GetTranscriptRequest(name=agent), timeout=CALL_TIMEOUT)
        return [convert.chat_message(m) for m in reply.messages]

    async def send(self, text: str, agents: list[str]) -> None:
        """Start a turn on one agent, or on several; its events arrive through ``watch``.

        The call is left once the daemon accepted it (the first event): with ``detach`` the
        turn runs on without this client.
        """
        if len(agents) == 1:
            call = self._chat.Chat(chat_pb2.ChatRequest(agent=agents[0], message=text, detach=True))
        else:
            call = self._chat.Broadcast(chat_pb2.BroadcastRequest(message=text, agents=agents, detach=True))
        try:
            with _one_line_errors():
                await call.read()
        finally:
            call.cancel()

    async def list_teams(self) -> list[TeamView]:
        with _one_line_errors():
            reply = await self._teams.ListTeams(teams_pb2.ListTeamsRequest(), timeout=CALL_TIMEOUT)
        return [convert.team(t) for t in reply.teams]

    async def put_team(self, team: TeamView) -> bool:
        """Create the team, or replace its settings: whether it was created."""
        request = teams_pb2.PutTeamRequest(team=convert.team_message(team))
        with _one_line_errors():
            reply = await self._teams.PutTeam(request, timeout=CALL_TIMEOUT)
        return reply.created

    async def delete_team(self, name: str) -> None:
        with _one_line_errors():
            await self._teams.DeleteTeam(teams_pb2.DeleteTeamRequest(name=name), timeout=CALL_TIMEOUT)

    async def run_team(self, text: str, team: str = "", kind: str = "", members: tuple[str, ...] = ()) -> None:
        """Start a run of a stored team, or of an ad-hoc one (``kind`` and ``members``); its
        events arrive through ``watch``. Left once the daemon accepted it: it runs on."""
        adhoc = teams_pb2.Team(name="adhoc", kind=kind, members=members) if not team else None
        call = self._teams.Run(teams_pb2.RunTeamRequest(team=team, message=text, detach=True, adhoc=adhoc))
        try:
            with _one_line_errors():
                await call.read()
        finally:
            call.cancel()

    async def cancel_run(self, run_id: str) -> None:
        with _one_line_errors():
            await self._teams.Cancel(teams_pb2.CancelRunRequest(run_id=run_id), timeout=CALL_TIMEOUT)

    async def cancel(self, agent: str | None = None) -> int:
        request = chat_pb2.CancelRequest(agent=agent) if agent else chat_pb2.CancelRequest(all=True)
        with _one_line_errors():
            return len((await self._chat.Cancel(request, timeout=CALL_TIMEOUT)).cancelled_turn_ids)

    async def watch(self) -> AsyncIterator[WatchEvent]:
        """Every agent's events, starting with the turns in progress."""
        async for event in _stream(self._chat.Watch(chat_pb2.WatchRequest())):
            message = convert.watch_event(event)
            if message is not None:
                yield message

    async def status(self, interval: float = 1.0) -> AsyncIterator[StatusView]:
        """The daemon's status, a snapshot every ``interval`` seconds."""
        async for snapshot in _stream(self._status.Status(status_pb2.StatusRequest(interval_seconds=interval))):
            yield convert.status(snapshot)

    async def audit_count(self, query: AuditQuery) -> int:
        """How many audit records match; counted on the clear headers, nothing is decrypted."""
        request = audit_pb2.AuditCountRequest(query=convert.audit_query(query))
        with _one_line_errors():
            return (await self._audit.Count(request, timeout=CALL_TIMEOUT)).count

    async def audit_rows(self, query: AuditQuery, offset: int, limit: int) -> list[AuditRecord]:
        """One page of matching records in seq order: the daemon decrypts only these."""
        request = audit_pb2.AuditRowsRequest(query=convert.audit_query(query), offset=offset, limit=limit)
        with _one_line_errors():
            reply = await self._audit.Rows(request, timeout=CALL_TIMEOUT)
        return [convert.audit_record(r) for r in reply.records]

    async def audit_follow(self, query: AuditQuery, last: int = 0) -> AsyncIterator[AuditRecord]:
        """The last ``last`` matching records, then every new one as the daemon writes it."""
        request = audit_pb2.AuditFollowRequest(query=convert.audit_query(query), last=last)
        async for record in _stream(self._audit.Follow(request)):
            yield convert.audit_record(record)

    async def audit_verify(self, timeout: float = LOAD_TIMEOUT) -> VerifyResult:
        """Verify the whole log (the daemon records that it did). It reads every record, about
        80,000 a second, so it gets the long timeout."""
        with _one_line_errors():
            return convert.verify_result(await self._audit.Verify(audit_pb2.AuditVerifyRequest(), timeout=timeout))
