"""Around every handler: who is calling (``Servicer.identify``), and domain errors turned into
gRPC statuses: one line, the right code, never a traceback."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import Any

import grpc

from enclaved.errors import EnclaveError

log = logging.getLogger("enclaved.rpc")

INTERNAL_MESSAGE = "internal error in enclaved; the daemon log has the details"


def status_code(name: str) -> grpc.StatusCode:
    return grpc.StatusCode[name]


async def _abort(context: grpc.aio.ServicerContext, exc: Exception, method: str) -> None:
    if isinstance(exc, EnclaveError):
        await context.abort(status_code(exc.code), exc.message)
    log.exception("%s failed", method)
    await context.abort(grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)


def unary(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(fn)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            await self.identify(context, fn.__name__)
            return await fn(self, request, context)
        except Exception as exc:
            if isinstance(exc, grpc.aio.AbortError):
                raise
            await _abort(context, exc, fn.__name__)

    return wrapper


def streaming(fn: Callable[..., AsyncGenerator[Any, None]]) -> Callable[..., AsyncIterator[Any]]:
    @functools.wraps(fn)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        try:
            await self.identify(context, fn.__name__)
            async with aclosing(fn(self, request, context)) as items:
                async for item in items:
                    yield item
        except Exception as exc:
            if isinstance(exc, grpc.aio.AbortError):
                raise
            await _abort(context, exc, fn.__name__)

    return wrapper
