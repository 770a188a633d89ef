"""Rendering a conversation into prompt tokens with the model's own chat template, dropping the
oldest turns when the conversation outgrows the context window."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

import jinja2
import jinja2.sandbox

from enclaved.errors import InvalidArgument

# Used when the GGUF has no tokenizer.chat_template.
PLAIN_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] }}\n\n"
    "{% elif message['role'] == 'user' %}User: {{ message['content'] }}\n"
    "{% else %}Assistant: {{ message['content'] }}\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)


class Tokenizer(Protocol):
    """What prompt building needs of a model (a loaded llama model is one)."""

    @property
    def chat_template(self) -> str | None: ...  # the GGUF's tokenizer.chat_template
    @property
    def bos_text(self) -> str: ...
    @property
    def eos_text(self) -> str: ...
    @property
    def add_bos(self) -> bool: ...  # the vocabulary wants a BOS token first

    def tokenize(self, text: str, *, add_special: bool, parse_special: bool = True) -> list[int]: ...


@dataclass(frozen=True)
class Prompt:
    tokens: list[int]
    dropped_messages: int  # oldest history messages left out to fit


def _raise(message: str) -> None:
    raise jinja2.TemplateError(message)


@lru_cache(maxsize=32)
def _compile(source: str) -> jinja2.Template:
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = _raise
    return env.from_string(source)


def render(model: Tokenizer, messages: list[dict[str, str]]) -> str:
    template = _compile(model.chat_template or PLAIN_TEMPLATE)
    try:
        return template.render(messages=messages, add_generation_prompt=True, bos_token=model.bos_text, eos_token=model.eos_text)
    except jinja2.TemplateError:
        # A template that rejects the conversation (e.g. no system role) falls back to plain.
        return _compile(PLAIN_TEMPLATE).render(messages=messages, add_generation_prompt=True)


def tokenize_prompt(model: Tokenizer, text: str) -> list[int]:
    add_bos = model.add_bos and not (model.bos_text and text.startswith(model.bos_text))
    return model.tokenize(text, add_special=add_bos, parse_special=True)


def build_prompt(
    model: Tokenizer,
    system: str,
    history: list[dict[str, str]],
    message: str,
    n_ctx: int,
    reserve: int,
) -> Prompt:
    """Fit system + history + message into ``n_ctx - reserve`` tokens, dropping whole
    exchanges from the oldest end. The new message alone must fit in the context."""
    head = [{"role": "system", "content": system}] if system else []
    user = [{"role": "user", "content": message}]
    target = max(n_ctx - reserve, 1)
    start = 0
    while True:
        tokens = tokenize_prompt(model, render(model, head + history[start:] + user))
        if len(tokens) <= target or start >= len(history):
            break
        start += 2 if start + 1 < len(history) else 1
    if len(tokens) >= n_ctx:
        raise InvalidArgument(
            f"the message and system prompt take {len(tokens)} tokens but the agent's context holds {n_ctx}; "
            "shorten the message or raise n_ctx for this model"
        )
    return Prompt(tokens=tokens, dropped_messages=start)
