"""enclave.v1.Teams"""

from __future__ import annotations

from collections.abc import AsyncGenerator

import grpc

from enclave_contract.v1 import chat_pb2, teams_pb2, teams_pb2_grpc
from enclaved.domain.hub import EventHub, RunEnded
from enclaved.domain.runs import RunManager
from enclaved.domain.teams import Team, TeamBook
from enclaved.errors import FailedPrecondition, InvalidArgument
from enclaved.services import convert, teamconvert


class TeamsService(teams_pb2_grpc.TeamsServicer):
    def __init__(self, teams: TeamBook, runs: RunManager, hub: EventHub) -> None:
        self.teams = teams
        self.runs = runs
        self.hub = hub

    async def ListTeams(self, request: teams_pb2.ListTeamsRequest, context: grpc.aio.ServicerContext) -> teams_pb2.ListTeamsResponse:
        return teams_pb2.ListTeamsResponse(teams=[teamconvert.team(t, self.runs.busy(t.name)) for t in self.teams.all()])

    async def PutTeam(self, request: teams_pb2.PutTeamRequest, context: grpc.aio.ServicerContext) -> teams_pb2.PutTeamResponse:
        if not request.team.name:
            raise InvalidArgument("team name is empty; give the team a name")
        team = teamconvert.team_from(request.team)
        created = await self.teams.put(team)
        return teams_pb2.PutTeamResponse(team=teamconvert.team(team, self.runs.busy(team.name)), created=created)

    async def DeleteTeam(self, request: teams_pb2.DeleteTeamRequest, context: grpc.aio.ServicerContext) -> teams_pb2.DeleteTeamResponse:
        if self.runs.busy(request.name):
            raise FailedPrecondition(f"team {request.name!r} has a run in progress or queued; cancel it or wait, then delete")
        await self.teams.delete(request.name)
        return teams_pb2.DeleteTeamResponse()

    async def Run(self, request: teams_pb2.RunTeamRequest, context: grpc.aio.ServicerContext) -> AsyncGenerator[chat_pb2.ChatEvent, None]:
        if request.HasField("adhoc"):
            target: Team | str = teamconvert.team_from(request.adhoc)
        elif request.team:
            target = request.team
        else:
            raise InvalidArgument("say which team to run: a team name, or an ad-hoc team")
        run = self.runs.prepare(target, request.message, request.detach)
        sub = self.hub.subscribe(runs=[run.id])
        try:
            await self.runs.launch(run)
            async for ev in sub.events():
                yield convert.chat_event(ev)
                if isinstance(ev.body, RunEnded):
                    return
        finally:
            sub.close()
            if not run.detach:
                self.runs.cancel(run)  # the client went away: its run stops (done runs ignore it)

    async def Cancel(self, request: teams_pb2.CancelRunRequest, context: grpc.aio.ServicerContext) -> teams_pb2.CancelRunResponse:
        if not request.run_id:
            raise InvalidArgument("say which run to cancel: its run id (enclave team run prints it)")
        self.runs.cancel(self.runs.get(request.run_id))
        return teams_pb2.CancelRunResponse()
