"""OpenAI request bodies to a domain ``Job``: every parameter checked, and an error that
names the parameter (never echoes its value). Parameters enclave does not use are ignored, as
other OpenAI-compatible servers do; ones that would change the answer's shape (``n`` > 1,
``tools``, ``logprobs``) are refused."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from enclaved.domain.completions import Job, Target
from enclaved.domain.prompt import Said
from enclaved.engine import SamplingSettings
from enclaved.transport.http.errors import BadParam

MAX_STOPS = 4  # as OpenAI
MAX_STOP_CHARS = 256
MAX_MESSAGES = 4096
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


def body_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadParam("body", "the request body must be a JSON object")
    return body


def model_name(body: dict[str, Any]) -> str:
    name = body.get("model")
    if not isinstance(name, str) or not name:
        raise BadParam("model", "model is required: a model's name or agent:NAME (GET /v1/models lists them)")
    return name


def stream_flags(body: dict[str, Any]) -> tuple[bool, bool]:
    """(stream, include_usage)"""
    stream = body.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise BadParam("stream", "stream must be true or false")
    options = body.get("stream_options")
    usage = False
    if options is not None:
        if not isinstance(options, dict):
            raise BadParam("stream_options", "stream_options must be an object")
        if not stream:
            raise BadParam("stream_options", "stream_options is only allowed with stream: true")
        usage = options.get("include_usage", False)
        if not isinstance(usage, bool):
            raise BadParam("stream_options.include_usage", "stream_options.include_usage must be true or false")
    return bool(stream), usage


def chat_job(body: dict[str, Any], target: Target) -> Job:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadParam("messages", "messages must be a non-empty array of {role, content} objects")
    if len(messages) > MAX_MESSAGES:
        raise BadParam("messages", f"at most {MAX_MESSAGES} messages")
    conversation = tuple(_message(m, i) for i, m in enumerate(messages))
    _refuse(body, tools=None, functions=None, logprobs=False, n=1)
    return _job(body, target, conversation=conversation)


def completion_job(body: dict[str, Any], target: Target) -> Job:
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise BadParam("prompt", "prompt must be a string (one prompt per request; token arrays are not taken)")
    if not prompt:
        raise BadParam("prompt", "prompt is empty")
    _refuse(body, echo=False, suffix=None, logprobs=None, n=1, best_of=1)
    return _job(body, target, prompt=prompt)


def _refuse(body: dict[str, Any], **allowed: Any) -> None:
    for name, default in allowed.items():
        value = body.get(name)
        if value and value != default:
            raise BadParam(name, f"{name} is not supported by enclave; leave it out")


def _message(m: Any, i: int) -> Said:
    where = f"messages[{i}]"
    if not isinstance(m, dict):
        raise BadParam(where, f"{where} must be an object with role and content")
    role = ROLES.get(m.get("role"))  # type: ignore[arg-type]
    if role is None:
        raise BadParam(f"{where}.role", f"{where}.role must be system, developer, user or assistant (tools are not supported)")
    content = m.get("content")
    if content is None and role == "assistant":
        content = ""
    if isinstance(content, list):
        parts = []
        for j, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise BadParam(f"{where}.content[{j}]", f"{where}.content[{j}] must be a text part: only text is supported")
            parts.append(part["text"])
        content = "".join(parts)
    if not isinstance(content, str):
        raise BadParam(f"{where}.content", f"{where}.content must be a string or an array of text parts")
    return Said(role, content)


def _job(body: dict[str, Any], target: Target, **what: Any) -> Job:
    sampling: SamplingSettings = target.params.sampling()
    temperature = _number(body, "temperature", 0.0, 2.0)
    top_p = _number(body, "top_p", 0.0, 1.0)
    seed = _integer(body, "seed", -(2**63), 2**63 - 1)
    if temperature is not None:
        sampling = replace(sampling, temperature=temperature)
    if top_p is not None:
        sampling = replace(sampling, top_p=top_p)
    if seed is not None:
        sampling = replace(sampling, seed=seed % 2**32)  # llama.cpp takes 32 bits
    max_tokens = _integer(body, "max_completion_tokens", 1, 2**31 - 1)
    if max_tokens is None:
        max_tokens = _integer(body, "max_tokens", 1, 2**31 - 1)
    if max_tokens is None and target.agent is not None:
        max_tokens = target.params.reply_limit
    return Job(target=target, sampling=sampling, max_tokens=max_tokens, stops=_stops(body) or target.params.stop, **what)


def _number(body: dict[str, Any], name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not low <= value <= high:
        raise BadParam(name, f"{name} must be a number from {low:g} to {high:g}")
    return float(value)


def _integer(body: dict[str, Any], name: str, low: int, high: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadParam(name, f"{name} must be a whole number from {low} to {high}")
    return value


def _stops(body: dict[str, Any]) -> tuple[str, ...]:
    stop = body.get("stop")
    if stop is None:
        return ()
    stops = [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise BadParam("stop", "stop must be a string or an array of non-empty strings")
    if len(stops) > MAX_STOPS or any(len(s) > MAX_STOP_CHARS for s in stops):
        raise BadParam("stop", f"stop takes at most {MAX_STOPS} strings of at most {MAX_STOP_CHARS} characters")
    return tuple(stops)
