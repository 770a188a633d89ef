"""enclave.v1.Agents"""

from __future__ import annotations

import grpc

from enclave_contract.v1 import agents_pb2, agents_pb2_grpc
from enclaved.domain.agents import AgentBook, check_fallbacks
from enclaved.domain.models import ModelRegistry
from enclaved.domain.turns import TurnManager
from enclaved.errors import FailedPrecondition, InvalidArgument
from enclaved.services import convert


class AgentsService(agents_pb2_grpc.AgentsServicer):
    def __init__(self, agents: AgentBook, models: ModelRegistry, turns: TurnManager) -> None:
        self.agents = agents
        self.models = models
        self.turns = turns

    async def ListAgents(self, request: agents_pb2.ListAgentsRequest, context: grpc.aio.ServicerContext) -> agents_pb2.ListAgentsResponse:
        return agents_pb2.ListAgentsResponse(agents=[convert.agent(a) for a in self.agents.all()])

    async def PutAgent(self, request: agents_pb2.PutAgentRequest, context: grpc.aio.ServicerContext) -> agents_pb2.PutAgentResponse:
        spec = request.agent
        if not spec.name:
            raise InvalidArgument("agent name is empty; give the agent a name")
        model = spec.model or self.models.first_valid()
        if not model:
            raise FailedPrecondition("no usable model in the models folders; add a .gguf file or name a model")
        self.models.check(model)  # NOT_FOUND / INVALID_ARGUMENT for a bad model name
        fallbacks = tuple(spec.fallbacks)
        check_fallbacks(model, fallbacks, self.models.check)
        agent, created = await self.agents.put(spec.name, model, spec.system, convert.agent_params(spec.sampling), fallbacks)
        return agents_pb2.PutAgentResponse(agent=convert.agent(agent), created=created)

    async def DeleteAgent(
        self, request: agents_pb2.DeleteAgentRequest, context: grpc.aio.ServicerContext
    ) -> agents_pb2.DeleteAgentResponse:
        await self.turns.delete_agent(request.name)
        return agents_pb2.DeleteAgentResponse()

    async def GetTranscript(
        self, request: agents_pb2.GetTranscriptRequest, context: grpc.aio.ServicerContext
    ) -> agents_pb2.GetTranscriptResponse:
        agent = self.agents.get(request.name)
        messages = [agents_pb2.TranscriptMessage(role=agents_pb2.ROLE_SYSTEM, content=agent.system)] if agent.system else []
        messages += [convert.transcript_message(m) for m in agent.history]
        return agents_pb2.GetTranscriptResponse(messages=messages)

    async def ClearTranscript(
        self, request: agents_pb2.ClearTranscriptRequest, context: grpc.aio.ServicerContext
    ) -> agents_pb2.ClearTranscriptResponse:
        await self.agents.clear(request.name)
        return agents_pb2.ClearTranscriptResponse()
