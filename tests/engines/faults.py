"""A small HTTP proxy in front of a real OpenAI-compatible server that misbehaves on command.

Each chat request (a POST) takes the next mode from ``script`` (``pass`` when it is empty);
other requests (health probes) always pass. Modes:

- ``pass``: relay both ways;
- ``stall``: read the request, answer nothing (until the client goes);
- ``stall-mid`` / ``drop-mid``: relay until two text chunks went through, then stall, or
  close the connection mid-stream;
- ``slow``: relay 64 bytes every 0.1 s (an event every 0.4 s or so);
- ``status:CODE`` (``status:429:RETRY_AFTER``): answer that status with a JSON error body;
- ``garbage``: a 200 event stream of lines that are not SSE;
- ``error``: a 200 event stream whose first event is an error object.

It runs its own event loop on a thread, so tests that talk gRPC synchronously can use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from collections import deque

TEXT_CHUNK = b'"delta": {"content"'
EVENT_STREAM = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"


class FaultProxy:
    def __init__(self, upstream_port: int, tls: ssl.SSLContext | None = None) -> None:
        self.upstream_port = upstream_port
        self.tls = tls  # serve HTTPS (the upstream stays plain HTTP)
        self.script: deque[str] = deque()
        self.posts = 0  # chat requests that reached the proxy
        self.client_gone = 0  # streams the client closed while the proxy held them
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> FaultProxy:
        self._thread.start()
        server = asyncio.run_coroutine_threadsafe(asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.tls), self._loop).result(10)
        self.port = server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        async def close() -> None:
            for task in asyncio.all_tasks() - {asyncio.current_task()}:
                task.cancel()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)

    def plan(self, *modes: str) -> None:
        self.script.clear()
        self.script.extend(modes)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0)
            body = await reader.readexactly(length)
            mode = "pass"
            if head.startswith(b"POST"):
                self.posts += 1
                mode = self.script.popleft() if self.script else "pass"
            # one request per connection: the server closes after it, and says so to the client
            lines = [line for line in head.split(b"\r\n") if line and not line.lower().startswith(b"connection:")]
            head = b"\r\n".join([*lines, b"connection: close", b"", b""])
            await self._serve(mode, head + body, reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def _until_client_goes(self, reader: asyncio.StreamReader) -> None:
        while await reader.read(4096):
            pass
        self.client_gone += 1

    async def _serve(self, mode: str, request: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if mode == "stall":
            await self._until_client_goes(reader)
        elif mode.startswith("status:"):
            code, _, retry_after = mode[7:].partition(":")
            extra = f"retry-after: {retry_after}\r\n" if retry_after else ""
            body = b'{"error": {"message": "injected", "type": "test"}}'
            writer.write(
                f"HTTP/1.1 {code} Injected\r\ncontent-type: application/json\r\n{extra}content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        elif mode == "garbage":
            writer.write(EVENT_STREAM + b"this is not an event stream\n\n")
            await writer.drain()
        elif mode == "error":
            writer.write(EVENT_STREAM + b'data: {"error": {"message": "the model crashed", "type": "server_error"}}\n\n')
            await writer.drain()
        else:
            await self._relay(mode, request, reader, writer)

    async def _relay(self, mode: str, request: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        try:
            up_writer.write(request)
            await up_writer.drain()
            texts = 0
            while data := await up_reader.read(65536):
                if mode == "slow":
                    for i in range(0, len(data), 64):
                        await asyncio.sleep(0.1)
                        writer.write(data[i : i + 64])
                        await writer.drain()
                    continue
                writer.write(data)
                await writer.drain()
                texts += data.count(TEXT_CHUNK)
                if mode in ("stall-mid", "drop-mid") and texts >= 2:
                    if mode == "stall-mid":
                        await self._until_client_goes(reader)
                    else:
                        transport = writer.transport
                        with contextlib.suppress(OSError):
                            transport.abort()
                    return
        finally:
            up_writer.close()
