"""Around every call to an enclave service: who is calling, and errors turned into statuses.

One gRPC server interceptor, so no servicer method can be added without it. For each call to
a guarded service it wraps the method's handler (the function gRPC runs in the call's own
task, with a context of its own) and, inside it:

1. sets ``ACTOR`` from the call's peer token (``PeerRegistry.actor``), so every record the
   call writes, and every task it starts (a turn, a model load), says who acted; a token
   that is not, or no longer, valid is recorded as ``access.denied`` and refused;
2. maps what the method raises: an ``EnclaveError`` to its status code and one-line
   message, anything else to INTERNAL with a fixed message, the traceback only in the
   daemon log. An abort the method made itself (``context.abort``) passes through.

Health and reflection are not guarded: they say nothing and record nothing.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Collection
from contextlib import aclosing
from typing import Any, NoReturn, cast

import grpc

from enclaved.audit.recorder import ACTOR, Recorder
from enclaved.audit.records import Entry
from enclaved.domain.throttle import Throttle
from enclaved.errors import EnclaveError, InvalidArgument
from enclaved.transport.peers import PeerDenied, PeerRegistry

log = logging.getLogger("enclaved.rpc")

INTERNAL_MESSAGE = "internal error in enclaved; the daemon log has the details"

Context = grpc.aio.ServicerContext
Unary = Callable[[Any, Context], Awaitable[Any]]
Streaming = Callable[[Any, Context], AsyncGenerator[Any, None]]
Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]]


class CallGuard(grpc.aio.ServerInterceptor):
    """Guards the methods of ``services`` (full names, e.g. ``enclave.v1.Chat``)."""

    def __init__(self, recorder: Recorder, peers: PeerRegistry, services: Collection[str]) -> None:
        self._recorder = recorder
        self._peers = peers
        self._services = frozenset(services)
        self._denials = Throttle()

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        service, _, method = handler_call_details.method.lstrip("/").partition("/")
        if handler is None or service not in self._services:
            return handler
        if handler.request_streaming:
            # enclave's services have none; one added later is not served unguarded
            log.error("%s streams its requests, which the call guard does not wrap; refusing it", handler_call_details.method)
            return None
        # grpc-stubs type a handler's behaviours as the sync API's; on grpc.aio they are
        # coroutine functions and async generator functions
        parse = _lenient(handler.request_deserializer)
        if handler.response_streaming:
            streaming = cast(Streaming, handler.unary_stream)
            return grpc.unary_stream_rpc_method_handler(self._streaming(method, streaming), parse, handler.response_serializer)
        unary = cast(Unary, handler.unary_unary)
        return grpc.unary_unary_rpc_method_handler(self._unary(method, unary), parse, handler.response_serializer)

    def _unary(self, method: str, behavior: Unary) -> Unary:
        async def guarded(request: Any, context: Context) -> Any:
            try:
                await self._identify(context, method)
                _check_parsed(request)
                return await behavior(request, context)
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                await _abort(context, exc, method)

        return guarded

    def _streaming(self, method: str, behavior: Streaming) -> Streaming:
        async def guarded(request: Any, context: Context) -> AsyncGenerator[Any, None]:
            try:
                await self._identify(context, method)
                _check_parsed(request)
                async with aclosing(behavior(request, context)) as items:
                    async for item in items:
                        yield item
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                await _abort(context, exc, method)

        return guarded

    async def _identify(self, context: Context, method: str) -> None:
        """Set ``ACTOR`` for this call; a token that is not (or no longer) valid is recorded
        as access.denied, under the most the daemon knows of the caller, and refused."""
        try:
            ACTOR.set(self._peers.actor(context.invocation_metadata()))
        except PeerDenied as exc:
            left_out = self._denials.admit((exc.actor.auth, exc.actor.uid) if exc.actor else None)
            if left_out is not None:  # at most one a second per caller, with a count
                payload = {"method": method, "reason": exc.message, "refused_since_last_record": left_out}
                await self._recorder.record(Entry("access.denied", outcome="denied", payload=payload), exc.actor)
            raise


class Malformed:
    """A request whose bytes are not its message: refused as INVALID_ARGUMENT by the guard,
    where grpc would answer UNKNOWN and log a traceback."""

    def __init__(self, message_type: str) -> None:
        self.message_type = message_type


def _lenient(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any]:
    message = getattr(getattr(deserialize, "__self__", None), "DESCRIPTOR", None)
    name = getattr(message, "full_name", "request")

    def parse(data: bytes) -> Any:
        if deserialize is None:
            return data
        try:
            return deserialize(data)
        except Exception:
            return Malformed(name)

    return parse


def _check_parsed(request: Any) -> None:
    if isinstance(request, Malformed):
        raise InvalidArgument(f"the request is not a valid {request.message_type} message; send one built from enclave's .proto files")


async def _abort(context: Context, exc: Exception, method: str) -> NoReturn:
    if isinstance(exc, EnclaveError):
        await context.abort(grpc.StatusCode[exc.code], exc.message)
    log.exception("%s failed", method)
    await context.abort(grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)
