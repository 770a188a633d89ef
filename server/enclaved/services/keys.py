"""enclave.v1.Keys: the HTTP listener's API keys."""

from __future__ import annotations

import grpc

from enclave_contract.v1 import keys_pb2, keys_pb2_grpc
from enclaved.domain.apikeys import ApiKeys
from enclaved.services import convert


class KeysService(keys_pb2_grpc.KeysServicer):
    def __init__(self, keys: ApiKeys) -> None:
        self.keys = keys

    async def CreateKey(self, request: keys_pb2.CreateKeyRequest, context: grpc.aio.ServicerContext) -> keys_pb2.CreateKeyResponse:
        secret = await self.keys.create(request.name)
        (made,) = [k for k in self.keys.all() if k.name == request.name]
        return keys_pb2.CreateKeyResponse(key=convert.api_key(made), secret=secret)

    async def ListKeys(self, request: keys_pb2.ListKeysRequest, context: grpc.aio.ServicerContext) -> keys_pb2.ListKeysResponse:
        return keys_pb2.ListKeysResponse(keys=[convert.api_key(k) for k in self.keys.all()])

    async def RevokeKey(self, request: keys_pb2.RevokeKeyRequest, context: grpc.aio.ServicerContext) -> keys_pb2.RevokeKeyResponse:
        await self.keys.revoke(request.name)
        return keys_pb2.RevokeKeyResponse()
