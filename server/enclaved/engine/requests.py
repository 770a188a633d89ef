"""What goes into the engine and what comes out of it: a request with its sampling settings,
the events its sink receives, and the one type a turn's result has from here to the wire."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

from enclaved.llama import DEFAULT_SEED

# A request's text goes to its sink at most this often (the first piece at once): 30 times a
# second, the most the workbench paints (``stream_hz`` ≤ 30). Each message costs the event loop,
# gRPC and every client CPU that, on a machine that also decodes, comes out of decoding.
COALESCE_SECONDS = 1 / 30

if TYPE_CHECKING:
    from enclaved.llama import Model, Sampler


@dataclass(frozen=True)
class SamplingSettings:
    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    repeat_penalty: float = 1.1
    seed: int = DEFAULT_SEED
    penalty_last_n: int = 64
    grammar: str = ""  # GBNF with a ``root`` rule: only text it allows is sampled; "" = free

    def sampler(self, model: Model, prompt: list[int]) -> Sampler:
        """A new sampler chain with these settings that has seen ``prompt`` (the caller closes it).

        llama.cpp's server accepts every prompt token into the chain before the first sample
        (``common_sampler_accept`` with ``accept_grammar=false``), so ``repeat_penalty`` counts
        the prompt. Only the penalties stage remembers accepted tokens, and it keeps just the
        last ``penalty_last_n``, so accepting those leaves the chain in the same state; the
        grammar sees none of them.
        """
        from enclaved.llama import Sampler  # llama.cpp: loaded with the first model

        return Sampler(
            model,
            temperature=self.temperature,
            top_k=self.top_k,
            top_p=self.top_p,
            min_p=self.min_p,
            repeat_penalty=self.repeat_penalty,
            penalty_last_n=self.penalty_last_n,
            seed=self.seed,
            grammar=self.grammar,
            seen=prompt,
        )


class Finish(Enum):
    END_OF_TURN = "end_of_turn"
    MAX_TOKENS = "max_tokens"
    STOP_STRING = "stop_string"
    CANCELLED = "cancelled"
    CONTEXT_FULL = "context_full"


@dataclass(frozen=True)
class Admitted:
    """The request got a sequence slot; prompt evaluation starts."""

    cached_tokens: int


@dataclass(frozen=True)
class Generating:
    """The prompt is evaluated; the first token was sampled."""


@dataclass(frozen=True)
class Text:
    text: str
    tokens: int


@dataclass(frozen=True)
class Failed:
    message: str
    started: bool = False  # after the first token (a remote engine's stream broke mid-reply)


@dataclass(frozen=True)
class TurnResult:
    """How a turn ended, with its token counts and its timings in milliseconds (the unit of
    the wire and the audit log). The engine's last event for a request, the hub's terminal
    event for a turn, and converted once into the protobuf ``TurnFinished``."""

    finish: Finish
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0  # prompt tokens reused from the sequence's KV cache
    queue_ms: float = 0.0  # waiting for a slot
    time_to_first_token_ms: float = 0.0  # from submit to the first token; 0 if none
    prompt_ms: float = 0.0
    generation_ms: float = 0.0
    tokens: tuple[int, ...] = field(default=(), repr=False)  # the generated tokens (no end-of-generation token)

    @property
    def prompt_tokens_per_second(self) -> float:
        """Prompt tokens evaluated (the cached ones were not) per second of prompt time."""
        return _per_second(self.prompt_tokens - self.cached_prompt_tokens, self.prompt_ms)

    @property
    def generation_tokens_per_second(self) -> float:
        # the first token comes out of prompt evaluation; the rest are generation
        return _per_second(max(self.completion_tokens - 1, 0), self.generation_ms)


def _per_second(tokens: int, ms: float) -> float:
    return tokens / (ms / 1000) if ms > 0 else 0.0


EngineEvent = Admitted | Generating | Text | TurnResult | Failed
Sink = Callable[[EngineEvent], object]  # what it returns is ignored


@dataclass
class Request:
    """A prompt to complete. ``sink`` is called on the scheduler thread with every event, the
    last one a ``TurnResult`` or ``Failed``; the caller makes it thread-safe."""

    prompt: list[int]
    sampling: SamplingSettings
    max_tokens: int
    stops: list[str]
    sink: Sink
    owner: str = ""  # whose conversation this is (an agent): its slot is the one to go on in
    id: int = field(default_factory=itertools.count(1).__next__)
    cancelled: bool = False
    submitted_at: float = field(default_factory=time.monotonic)
