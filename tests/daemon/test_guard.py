"""The call guard: one gRPC server interceptor sets who is calling and turns errors into
statuses, for unary and server-streaming methods, on a real grpc.aio server."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest

from enclaved.audit import AuditConfig, Filters
from enclaved.audit.recorder import ACTOR, Recorder
from enclaved.errors import NotFound
from enclaved.transport.guard import INTERNAL_MESSAGE, CallGuard
from enclaved.transport.peers import PEER_METADATA_KEY, PeerRegistry


def _ident(b: bytes) -> bytes:
    return b


async def _actors() -> bytes:
    """The actor this call runs as, and the one a task it starts inherits."""
    inherited = await asyncio.create_task(asyncio.sleep(0, ACTOR.get()))
    return json.dumps([ACTOR.get().auth, inherited.auth]).encode()


async def who(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return await _actors()


async def who_stream(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    for _ in range(2):
        yield await _actors()


async def not_found(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    raise NotFound("no such thing; make one first")


async def crash(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    raise RuntimeError("a secret detail")


async def crash_stream(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    yield b"[]"
    raise RuntimeError("a secret detail")


async def aborts(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    await context.abort(grpc.StatusCode.OUT_OF_RANGE, "the method's own status")


def _service(name: str) -> grpc.GenericRpcHandler:
    unary = {"Who": who, "NotFound": not_found, "Crash": crash, "Aborts": aborts}
    streams = {"WhoStream": who_stream, "CrashStream": crash_stream}
    return grpc.method_handlers_generic_handler(
        name,
        {
            **{k: grpc.unary_unary_rpc_method_handler(f, _ident, _ident) for k, f in unary.items()},
            **{k: grpc.unary_stream_rpc_method_handler(f, _ident, _ident) for k, f in streams.items()},
        },
    )


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(dir="/tmp", prefix="encg-"))
    os.chmod(d, 0o700)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
async def served(sock_dir: Path) -> AsyncIterator[tuple[grpc.aio.Channel, Recorder]]:
    recorder = Recorder()
    await recorder.open(sock_dir / "data", AuditConfig())
    server = grpc.aio.server(interceptors=[CallGuard(recorder, PeerRegistry(), ["test.Guarded"])])
    server.add_generic_rpc_handlers((_service("test.Guarded"), _service("test.Open")))
    server.add_insecure_port(f"unix:{sock_dir / 's'}")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"unix:{sock_dir / 's'}") as channel:
            yield channel, recorder
    finally:
        await server.stop(None)
        await recorder.close()


async def _call(channel: grpc.aio.Channel, method: str, token: str | None = None) -> Any:
    metadata = ((PEER_METADATA_KEY, token),) if token else None
    return await channel.unary_unary(method, _ident, _ident)(b"", timeout=10, metadata=metadata)


async def _stream(channel: grpc.aio.Channel, method: str) -> list[bytes]:
    return [m async for m in channel.unary_stream(method, _ident, _ident)(b"", timeout=10)]


async def test_the_actor_is_set_for_the_call_and_the_tasks_it_starts(served: tuple[grpc.aio.Channel, Recorder]) -> None:
    channel, _ = served
    # no token: the socket's owner (the daemon's own default would be "local-process")
    assert json.loads(await _call(channel, "/test.Guarded/Who")) == ["socket-owner", "socket-owner"]
    assert [json.loads(m) for m in await _stream(channel, "/test.Guarded/WhoStream")] == [["socket-owner"] * 2] * 2
    # a service the guard does not cover runs as the daemon and is never refused
    assert json.loads(await _call(channel, "/test.Open/Who", token="made-up")) == ["local-process", "local-process"]


async def test_an_unknown_token_is_refused_and_recorded(served: tuple[grpc.aio.Channel, Recorder]) -> None:
    channel, recorder = served
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _call(channel, "/test.Guarded/Who", token="made-up")
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED and "reconnect" in (err.value.details() or "")
    (denied,) = await recorder.log.rows(Filters(action="access.denied"))
    assert denied.outcome == "denied" and denied.payload["method"] == "Who" and denied.actor.auth == "socket-owner"


async def test_errors_become_one_line_statuses(served: tuple[grpc.aio.Channel, Recorder], caplog: pytest.LogCaptureFixture) -> None:
    channel, _ = served
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _call(channel, "/test.Guarded/NotFound")
    assert (err.value.code(), err.value.details()) == (grpc.StatusCode.NOT_FOUND, "no such thing; make one first")

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _call(channel, "/test.Guarded/Aborts")
    assert (err.value.code(), err.value.details()) == (grpc.StatusCode.OUT_OF_RANGE, "the method's own status")

    with caplog.at_level(logging.ERROR, logger="enclaved.rpc"):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _call(channel, "/test.Guarded/Crash")
        assert (err.value.code(), err.value.details()) == (grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _stream(channel, "/test.Guarded/CrashStream")
        assert (err.value.code(), err.value.details()) == (grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)
    logged = [r for r in caplog.records if r.name == "enclaved.rpc"]
    assert [r.getMessage() for r in logged] == ["Crash failed", "CrashStream failed"]
    assert all(r.exc_info and "a secret detail" in str(r.exc_info[1]) for r in logged)  # the details stay in the log
