"""The OpenAI-compatible endpoints: thin handlers from JSON to the domain's stateless
completions and back, streaming as server-sent events.

A handler waits for the run's first event before it answers, so an error found when the
prompt is built (the context is too small, the model will not load) is still an HTTP status
with an error object; once a stream has begun, an error is its last data line. A client that
goes away cancels the handler (``handler_cancellation``), and the handler cancels its run.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from aiohttp import web

from enclaved.domain.agents import AgentBook
from enclaved.domain.completions import AGENT_PREFIX, Completions, Event, Run
from enclaved.domain.models import ModelRegistry, State
from enclaved.engine import Finish, Text, TurnResult
from enclaved.errors import EnclaveError
from enclaved.transport.http import params
from enclaved.transport.http.errors import BadParam, error_of, from_domain, json_response

FINISH = {
    Finish.END_OF_TURN: "stop",
    Finish.STOP_STRING: "stop",
    Finish.MAX_TOKENS: "length",
    Finish.CONTEXT_FULL: "length",
    Finish.CANCELLED: "stop",
}
OWNER = "enclave"


def usage(result: TurnResult) -> dict[str, Any]:
    return {
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "total_tokens": result.prompt_tokens + result.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": result.cached_prompt_tokens},
    }


async def events(run: Run) -> AsyncGenerator[Event, None]:
    """The run's events up to and including its last; cancels the run if the reader stops."""
    try:
        while True:
            ev = await run.events.get()
            yield ev
            if not isinstance(ev, Text):
                return
    finally:
        run.cancel()


class OpenAiRoutes:
    def __init__(self, models: ModelRegistry, agents: AgentBook, completions: Completions) -> None:
        self.models = models
        self.agents = agents
        self.completions = completions

    def add_to(self, app: web.Application) -> None:
        app.router.add_get("/v1/models", self.list_models)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/completions", self.complete)

    async def list_models(self, request: web.Request) -> web.Response:
        data = [
            {"id": v.file.name, "object": "model", "created": _mtime(v.file.path), "owned_by": OWNER}
            for v in self.models.views()
            if v.state is not State.INVALID
        ]
        data += [{"id": v.name, "object": "model", "created": 0, "owned_by": v.engine} for v in self.models.remote.views()]
        data += [{"id": AGENT_PREFIX + a.name, "object": "model", "created": 0, "owned_by": OWNER} for a in self.agents.all()]
        return json_response({"object": "list", "data": data})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, chat=True)

    async def complete(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, chat=False)

    async def _serve(self, request: web.Request, *, chat: bool) -> web.StreamResponse:
        body = params.body_object(await _json(request))
        name = params.model_name(body)
        stream, include_usage = params.stream_flags(body)
        target = self.completions.target(name)
        job = params.chat_job(body, target) if chat else params.completion_job(body, target)
        run = await self.completions.start(job)
        reply = Reply(run, name, chat)
        items = events(run)
        try:
            first = await anext(items)
            if isinstance(first, EnclaveError):
                return from_domain(first)
            if not stream:
                return await reply.whole(first, items)
            return await reply.stream(request, first, items, include_usage)
        finally:
            await items.aclose()


class Reply:
    """One run's answer in the shape of a chat completion or a text completion."""

    def __init__(self, run: Run, model: str, chat: bool) -> None:
        self.id = ("chatcmpl-" if chat else "cmpl-") + run.id
        self.model = model
        self.chat = chat
        self.created = int(time.time())

    def _object(self, chunk: bool) -> dict[str, Any]:
        kind = ("chat.completion.chunk" if chunk else "chat.completion") if self.chat else "text_completion"
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model, "system_fingerprint": None}

    def _choice(self, text: str | None, finish: str | None, *, chunk: bool) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": 0}
        if not self.chat:
            choice["text"] = text or ""
        elif chunk:
            choice["delta"] = {} if text is None else {"content": text}
        else:
            choice["message"] = {"role": "assistant", "content": text or ""}
        return {**choice, "logprobs": None, "finish_reason": finish}

    async def whole(self, first: Event, rest: AsyncIterator[Event]) -> web.Response:
        parts: list[str] = []
        ev = first
        while isinstance(ev, Text):
            parts.append(ev.text)
            ev = await anext(rest)
        if isinstance(ev, EnclaveError):
            return from_domain(ev)
        assert isinstance(ev, TurnResult)
        return json_response(
            {**self._object(False), "choices": [self._choice("".join(parts), FINISH[ev.finish], chunk=False)], "usage": usage(ev)}
        )

    async def stream(self, request: web.Request, first: Event, rest: AsyncIterator[Event], include_usage: bool) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        try:
            await self._events(response, first, rest, include_usage)
        except ConnectionResetError:
            pass  # the client went away between two writes; the caller cancels the run
        return response

    async def _events(self, response: web.StreamResponse, first: Event, rest: AsyncIterator[Event], include_usage: bool) -> None:
        extra = {"usage": None} if include_usage else {}
        if self.chat:  # the role first, as OpenAI does
            role = {**self._object(True), "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
            await _send(response, {**role, **extra})
        ev = first
        while isinstance(ev, Text):
            await _send(response, {**self._object(True), "choices": [self._choice(ev.text, None, chunk=True)], **extra})
            ev = await anext(rest)
        if isinstance(ev, EnclaveError):
            await _send(response, error_of(ev)[1])
        else:
            await _send(response, {**self._object(True), "choices": [self._choice(None, FINISH[ev.finish], chunk=True)], **extra})
            if include_usage:
                await _send(response, {**self._object(True), "choices": [], "usage": usage(ev)})
            await response.write(b"data: [DONE]\n\n")
        await response.write_eof()


async def _send(response: web.StreamResponse, data: dict[str, Any]) -> None:
    await response.write(b"data: " + json.dumps(data, ensure_ascii=False).encode() + b"\n\n")


async def _json(request: web.Request) -> Any:
    try:
        return await request.json(loads=json.loads)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        raise BadParam("body", "the request body is not valid JSON") from None


def _mtime(path: Any) -> int:
    try:
        return int(path.stat().st_mtime)
    except OSError:
        return 0
