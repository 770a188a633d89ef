"""A conversation for a remote model (``model@engine``) as chat messages, trimmed to its context.

The engine applies its own chat template, but its context is as finite as a local model's: a
conversation that outgrows it fails (vLLM answers HTTP 400; llama-cpp-python's server ends the
stream with no reply). So, like a local prompt
(``prompt.build_prompt``), the oldest exchanges are left out until system + history + message
fit the context less a reserve for the reply, and the turn says how many
(``Truncated``, "N oldest messages left out").

enclave has no tokenizer for a remote model: how it counts (the engine's tokenize endpoint, else
characters / 3, and a byte bound that needs neither) is in ``engine/remote/tokens.py``. With no
known context (no ``context`` in the ``[[engines]]`` block and none in ``/v1/models``) the
conversation goes whole.
"""

from __future__ import annotations

from dataclasses import dataclass

from enclaved.domain.prompt import REPLY_RESERVE_FRACTION
from enclaved.domain.remote import RemoteModels
from enclaved.engine.remote.tokens import MESSAGE_OVERHEAD, PROMPT_OVERHEAD, upper_bound
from enclaved.errors import InvalidArgument


@dataclass(frozen=True)
class RemotePrompt:
    messages: list[dict[str, str]]
    dropped_messages: int  # oldest history messages left out to fit
    tokens: int  # what the messages take, counted or estimated; 0 when the context is unknown
    room: int  # tokens the context has left for the reply; 0 when the context is unknown


def _total(counts: list[int]) -> int:
    return PROMPT_OVERHEAD + sum(counts) + MESSAGE_OVERHEAD * len(counts)


def fit(counts: list[int], head: int, target: int) -> tuple[int, int]:
    """How many history messages to leave out so that ``counts`` (``head`` system messages,
    the history, the new message) fit ``target`` tokens, whole exchanges from the oldest end;
    and what is left takes. All of the history goes if need be; the system prompt and the new
    message always stay."""
    history = len(counts) - head - 1
    total, dropped = _total(counts), 0
    while total > target and dropped < history:
        step = 2 if dropped + 1 < history else 1
        gone = counts[head + dropped : head + dropped + step]
        total -= sum(gone) + MESSAGE_OVERHEAD * len(gone)
        dropped += step
    return dropped, total


async def build_remote_prompt(
    remote: RemoteModels, name: str, system: str, history: list[tuple[str, str]], message: str, reply_limit: int
) -> RemotePrompt:
    """``history``: (role, content) pairs, oldest first. InvalidArgument when the engine
    counted and the system prompt and message alone fill the context."""
    head = [{"role": "system", "content": system}] if system else []
    messages = [*head, *({"role": r, "content": c} for r, c in history), {"role": "user", "content": message}]
    context = remote.context(name)
    if not context:
        return RemotePrompt(messages, 0, 0, 0)
    target = max(context - min(reply_limit, context // REPLY_RESERVE_FRACTION), 1)
    bound = _total([upper_bound(m["content"]) for m in messages])
    if bound <= target:  # fits whatever the tokenizer: nothing to ask the engine
        return RemotePrompt(messages, 0, bound, context - bound)
    counts, exact = await remote.count_tokens(name, [m["content"] for m in messages])
    dropped, tokens = fit(counts, len(head), target)
    if exact and tokens >= context:
        raise InvalidArgument(
            f"the message and system prompt take {tokens} tokens but the context of {name} holds {context}; "
            "shorten the message or the agent's system prompt"
        )
    kept = head + messages[len(head) + dropped :]
    return RemotePrompt(kept, dropped, tokens, max(context - tokens, 1))
