"""One line of a streamed chat completion (Server-Sent Events, ``data: {json}``) read into
what enclave needs: text, the finish reason, the usage, or the engine's error."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterable
from dataclasses import dataclass
from typing import Any

MAX_LINE = 1 << 20  # bytes: a longer line is not a chunk of a chat stream


class Malformed(Exception):
    """The line is not what an OpenAI-compatible stream sends."""


@dataclass(frozen=True)
class Chunk:
    text: str = ""
    finish_reason: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None  # usage.prompt_tokens_details.cached_tokens
    prompt_ms: float | None = None  # llama-server's ``timings`` in its last chunk
    generation_ms: float | None = None
    error: str = ""  # the engine's error object, as one short line
    done: bool = False  # ``data: [DONE]``


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _ms(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0 else None


def _figures(obj: dict[str, Any]) -> dict[str, Any]:
    """Usage (OpenAI, vLLM: a last chunk when ``stream_options.include_usage``) and timings
    (llama-server), when the engine sends them."""
    out: dict[str, Any] = {}
    usage = obj.get("usage")
    if isinstance(usage, dict):
        out["prompt_tokens"] = _int(usage.get("prompt_tokens"))
        out["completion_tokens"] = _int(usage.get("completion_tokens"))
        details = usage.get("prompt_tokens_details")
        if isinstance(details, dict):
            out["cached_tokens"] = _int(details.get("cached_tokens"))
    timings = obj.get("timings")
    if isinstance(timings, dict):
        out["prompt_ms"] = _ms(timings.get("prompt_ms"))
        out["generation_ms"] = _ms(timings.get("predicted_ms"))
    return out


def _error(obj: dict[str, Any]) -> str:
    """The error object's type or code only: its message may quote what was asked, and
    neither logs nor errors carry people's text."""
    err = obj["error"]
    if isinstance(err, dict):
        for key in ("type", "code"):
            value = err.get(key)
            if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
                return " ".join(str(value).split())[:64]
    return "an error object"


async def lines(pieces: AsyncIterable[bytes]) -> AsyncGenerator[str, None]:
    """The lines of a body that arrives in ``pieces`` of any size (what each socket read gave,
    so a burst of chunks costs one wakeup), without their ``\n`` or ``\r\n``."""
    rest = b""
    async for piece in pieces:
        rest += piece
        if b"\n" in piece:
            *complete, rest = rest.split(b"\n")
            for line in complete:
                yield line.removesuffix(b"\r").decode("utf-8", "replace")
        if len(rest) > MAX_LINE:
            raise Malformed(f"a line longer than {MAX_LINE >> 20} MiB")
    if rest:
        yield rest.removesuffix(b"\r").decode("utf-8", "replace")


def parse(line: str) -> Chunk | None:
    """A chunk, or None for what carries none (blank lines, comments, other fields)."""
    if not line.startswith("data:"):
        if line.startswith((":", "event:", "id:", "retry:")) or not line.strip():
            return None
        raise Malformed("a line that is not SSE")
    data = line[5:].strip()
    if data == "[DONE]":
        return Chunk(done=True)
    try:
        obj = json.loads(data)
    except ValueError:
        raise Malformed("a data line that is not JSON") from None
    if not isinstance(obj, dict):
        raise Malformed("a data line that is not a JSON object")
    if obj.get("error"):
        return Chunk(error=_error(obj))
    choices = obj.get("choices")
    if not isinstance(choices, list):
        raise Malformed("a chunk without choices")
    text, finish = "", ""
    if choices:
        choice = choices[0]
        if not isinstance(choice, dict):
            raise Malformed("a choice that is not an object")
        delta = choice.get("delta") or {}
        content = delta.get("content") if isinstance(delta, dict) else None
        text = content if isinstance(content, str) else ""
        finish = choice.get("finish_reason") or ""
    return Chunk(text=text, finish_reason=str(finish), **_figures(obj))
