"""A conversation as prompt tokens: the model's chat template, people's text kept as text, the
model's own reply tokens reused, and the oldest turns dropped when the context is outgrown.

The template is rendered once with a placeholder for each message's content. The template's
own text (role markers, ``<|im_start|>``) is tokenized with special tokens parsed; what people
typed is tokenized as plain text, so a user who types ``<|im_end|>`` gets those characters,
not the control token. An assistant message whose generated tokens are known uses them as
they were, so the next prompt begins with exactly what the agent's KV sequence holds.

Which template: the GGUF's ``tokenizer.chat_template``; if it has none, llama.cpp's built-in
template for the model's architecture (Gemma's, for example); else a plain one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Protocol

from enclaved.errors import InvalidArgument

if TYPE_CHECKING:
    import jinja2

# Used when there is neither a GGUF template nor a built-in one.
PLAIN_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] }}\n\n"
    "{% elif message['role'] == 'user' %}User: {{ message['content'] }}\n"
    "{% else %}Assistant: {{ message['content'] }}\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)
# Private-use characters: no template changes them, and no tokenizer gives them meaning.
_OPEN, _CLOSE = "\ue000", "\ue001"
_PLACEHOLDER = re.compile(f"{_OPEN}(\\d+){_CLOSE}")
_TRIM_ROUNDS = 4  # renders per prompt at most while fitting a long history
REPLY_RESERVE_FRACTION = 2  # when trimming history, keep room for a reply of max_tokens, up to half the context


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

    def builtin_template(self, messages: list[dict[str, str]]) -> str | None:
        """The conversation through llama.cpp's built-in template for this model's
        architecture; None when there is none."""
        ...


@dataclass(frozen=True)
class Said:
    """One message of a conversation; ``tokens``: the model's own tokens for it, when known."""

    role: str
    content: str
    tokens: tuple[int, ...] = ()


@dataclass(frozen=True)
class Prompt:
    tokens: list[int]
    dropped_messages: int  # oldest history messages left out to fit


def _raise(message: str) -> None:
    import jinja2

    raise jinja2.TemplateError(message)


@lru_cache(maxsize=32)
def _compile(source: str) -> jinja2.Template:
    import jinja2.sandbox  # with the first prompt: the daemon opens its socket before

    env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = _raise
    return env.from_string(source)


def render(model: Tokenizer, messages: list[dict[str, str]]) -> str:
    """The conversation as the template's text, ending with the assistant's turn."""
    if not model.chat_template:
        builtin = model.builtin_template(messages)
        if builtin is not None:
            return builtin
    import jinja2

    template = _compile(model.chat_template or PLAIN_TEMPLATE)
    try:
        return template.render(messages=messages, add_generation_prompt=True, bos_token=model.bos_text, eos_token=model.eos_text)
    except jinja2.TemplateError:
        # A template that rejects the conversation (e.g. no system role) falls back to plain.
        return _compile(PLAIN_TEMPLATE).render(messages=messages, add_generation_prompt=True)


def tokenize(model: Tokenizer, conversation: list[Said]) -> list[int]:
    """The conversation's prompt tokens: template text with special tokens, content as text."""
    return _tokenize(model, conversation)[0]


def _tokenize(model: Tokenizer, conversation: list[Said]) -> tuple[list[int], list[int]]:
    """The tokens, and where each message begins in them (with the template text before it)."""
    shown = [{"role": m.role, "content": f"{_OPEN}{i}{_CLOSE}"} for i, m in enumerate(conversation)]
    parts = _PLACEHOLDER.split(render(model, shown))
    bos = model.add_bos and not (model.bos_text and parts[0].startswith(model.bos_text))
    tokens: list[int] = model.tokenize("", add_special=True) if bos else []
    starts = [0] * len(conversation)
    begun = len(tokens)  # where the text before the next content began
    for i, part in enumerate(parts):
        if i % 2 == 0:  # the template's own text
            begun = len(tokens)
            if part:
                tokens += model.tokenize(part, add_special=False, parse_special=True)
            continue
        index = int(part)
        said = conversation[index]
        starts[index] = begun
        tokens += said.tokens or model.tokenize(said.content, add_special=False, parse_special=False)
    return tokens, starts


def build_prompt(model: Tokenizer, system: str, history: list[Said], message: str, n_ctx: int, reserve: int) -> Prompt:
    """Fit system + history + message into ``n_ctx - reserve`` tokens, dropping whole
    exchanges from the oldest end. The new message alone must fit in the context.

    One render shows how far over the conversation is and where each message begins in its
    tokens; the oldest exchanges that cover the excess go in one step. So a long history costs
    a render or two, not one per dropped exchange.
    """
    head = [Said("system", system)] if system else []
    user = [Said("user", message)]
    target = max(n_ctx - reserve, 1)
    start = 0
    tokens, starts = _tokenize(model, head + history + user)
    for _ in range(_TRIM_ROUNDS):
        if len(tokens) <= target or start >= len(history):
            break
        over, first = len(tokens) - target, len(head)
        drop = 0
        while drop < len(history) - start and starts[first + drop] - starts[first] < over:
            drop += 2 if start + drop + 1 < len(history) else 1
        start += max(drop, 1 if start + 1 >= len(history) else 2)
        tokens, starts = _tokenize(model, head + history[start:] + user)
    while len(tokens) > target and start < len(history):  # a template that is not a plain sequence
        start += 2 if start + 1 < len(history) else 1
        tokens = tokenize(model, head + history[start:] + user)
    if len(tokens) >= n_ctx:
        raise InvalidArgument(
            f"the message and system prompt take {len(tokens)} tokens but the agent's context holds {n_ctx}; "
            "shorten the message or raise n_ctx for this model"
        )
    return Prompt(tokens=tokens, dropped_messages=start)
