"""enclave.v1.Models"""

from __future__ import annotations

import time

import grpc

from enclave_contract.v1 import models_pb2, models_pb2_grpc
from enclaved.audit.recorder import Recorder
from enclaved.domain.models import ModelRegistry
from enclaved.services import convert
from enclaved.services.base import Servicer
from enclaved.services.errors import unary
from enclaved.transport.peers import PeerRegistry


class ModelsService(Servicer, models_pb2_grpc.ModelsServicer):
    def __init__(self, models: ModelRegistry, recorder: Recorder, peers: PeerRegistry | None) -> None:
        super().__init__(recorder, peers)
        self.models = models

    @unary
    async def ListModels(self, request: models_pb2.ListModelsRequest, context: grpc.aio.ServicerContext) -> models_pb2.ListModelsResponse:
        return models_pb2.ListModelsResponse(models=[convert.model(v) for v in self.models.views()])

    @unary
    async def LoadModel(self, request: models_pb2.LoadModelRequest, context: grpc.aio.ServicerContext) -> models_pb2.LoadModelResponse:
        started = time.monotonic()
        _, evicted = await self.models.load(request.name)
        return models_pb2.LoadModelResponse(
            model=convert.model(self.models.view(request.name)),
            load_seconds=time.monotonic() - started,
            evicted=evicted,
        )

    @unary
    async def UnloadModel(
        self, request: models_pb2.UnloadModelRequest, context: grpc.aio.ServicerContext
    ) -> models_pb2.UnloadModelResponse:
        await self.models.unload(request.name)
        return models_pb2.UnloadModelResponse(model=convert.model(self.models.view(request.name)))
