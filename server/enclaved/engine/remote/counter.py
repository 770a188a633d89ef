"""Asking a remote engine how many tokens a text takes; see ``tokens`` for the endpoints, the
estimate when there is none, and the cache."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections import OrderedDict
from typing import Any

import aiohttp

from enclaved.engine.remote.tokens import estimate

log = logging.getLogger("enclaved.engines")
COUNT_TIMEOUT = 5.0  # seconds for one count; a busy engine gets the estimate instead
CACHE_SIZE = 4096  # texts whose counts are kept, per engine
_TIMEOUT = aiohttp.ClientTimeout(total=COUNT_TIMEOUT)
_ABSENT = frozenset({404, 405, 422})  # the endpoint is not there (or takes another body)


def _request(path: str, text: str, model: str) -> dict[str, str]:
    if path == "/extras/tokenize/count":
        return {"input": text, "model": model}
    return {"content": text, "prompt": text, "model": model}


def _read_count(reply: Any) -> int | None:
    if not isinstance(reply, dict):
        return None
    count = reply.get("count")
    if isinstance(count, int) and not isinstance(count, bool):
        return count
    tokens = reply.get("tokens")
    return len(tokens) if isinstance(tokens, list) else None


class TokenCounter:
    """One engine's token counts: its tokenize endpoint (once found) and a cache."""

    ENDPOINTS = ("/extras/tokenize/count", "/tokenize")

    def __init__(self, engine: str) -> None:
        self.engine = engine
        self.endpoint: str | None = None  # None: not found out yet; "": the engine has none
        self._cache: OrderedDict[bytes, int] = OrderedDict()

    async def count(self, client: aiohttp.ClientSession, root: str, model: str, texts: list[str]) -> tuple[list[int], bool]:
        """Each text's tokens, and whether the engine counted them (False: estimated)."""
        keys = [hashlib.blake2b(f"{model}\0{t}".encode(), digest_size=16).digest() for t in texts]
        missing = [i for i, k in enumerate(keys) if k not in self._cache]
        counted: list[int | None] = []
        if missing and self.endpoint is None:  # one text finds the endpoint (or that there is none)
            counted.append(await self._ask(client, root, model, texts[missing[0]]))
        rest = missing[len(counted) :]
        if self.endpoint:
            counted += await asyncio.gather(*(self._ask(client, root, model, texts[i]) for i in rest))
        else:
            counted += [None] * len(rest)
        for i, c in zip(missing, counted):
            if c is not None:
                self._remember(keys[i], c)
        out = []
        for k, t in zip(keys, texts):
            found = self._cache.get(k)
            if found is not None:
                self._cache.move_to_end(k)
            out.append(estimate(t) if found is None else found)
        return out, all(c is not None for c in counted)

    def _remember(self, key: bytes, count: int) -> None:
        self._cache[key] = count
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)

    async def _ask(self, client: aiohttp.ClientSession, root: str, model: str, text: str) -> int | None:
        """The engine's count, or None when it has no endpoint or this count failed."""
        paths = self.ENDPOINTS if self.endpoint is None else (self.endpoint,) if self.endpoint else ()
        for path in paths:
            try:
                async with client.post(f"{root}{path}", json=_request(path, text, model), timeout=_TIMEOUT) as reply:
                    status = reply.status
                    body = await reply.read() if status == 200 else b""
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.info("engine %s: counting tokens failed (%s); estimating them this turn", self.engine, type(exc).__name__)
                return None
            if status in _ABSENT and self.endpoint is None:
                continue
            try:
                count = _read_count(json.loads(body)) if status == 200 else None
            except ValueError:
                count = None
            if count is None:
                log.info("engine %s: %s answered HTTP %d without a count; estimating tokens this turn", self.engine, path, status)
                return None
            if self.endpoint is None:
                log.info("engine %s counts tokens at %s", self.engine, path)
                self.endpoint = path
            return count
        if self.endpoint is None:
            log.info("engine %s has no tokenize endpoint; enclave estimates its tokens (characters / 3)", self.engine)
            self.endpoint = ""
        return None
