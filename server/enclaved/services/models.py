"""enclave.v1.Models"""

from __future__ import annotations

import time

import grpc

from enclave_contract.v1 import models_pb2, models_pb2_grpc
from enclaved.domain.models import ModelRegistry
from enclaved.services import convert


class ModelsService(models_pb2_grpc.ModelsServicer):
    def __init__(self, models: ModelRegistry) -> None:
        self.models = models

    async def ListModels(self, request: models_pb2.ListModelsRequest, context: grpc.aio.ServicerContext) -> models_pb2.ListModelsResponse:
        local = [convert.model(v) for v in self.models.views()]
        return models_pb2.ListModelsResponse(models=local + [convert.remote_model(v) for v in self.models.remote.views()])

    async def LoadModel(self, request: models_pb2.LoadModelRequest, context: grpc.aio.ServicerContext) -> models_pb2.LoadModelResponse:
        started = time.monotonic()
        _, evicted = await self.models.load(request.name)
        return models_pb2.LoadModelResponse(
            model=convert.model(self.models.view(request.name)),
            load_seconds=time.monotonic() - started,
            evicted=evicted,
        )

    async def UnloadModel(
        self, request: models_pb2.UnloadModelRequest, context: grpc.aio.ServicerContext
    ) -> models_pb2.UnloadModelResponse:
        await self.models.unload(request.name)
        return models_pb2.UnloadModelResponse(model=convert.model(self.models.view(request.name)))
