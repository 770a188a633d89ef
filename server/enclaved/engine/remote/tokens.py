"""How many tokens a remote model's conversation takes, and how many its context holds. No
HTTP here (the domain imports it at start); ``counter`` asks the engine.

enclave has no tokenizer for a remote model, so it asks the engine when the engine has an
endpoint for it, and estimates otherwise:

- **The engine's tokenizer.** llama-cpp-python's server answers ``POST /extras/tokenize/count``
  (``{"input", "model"}`` → ``{"count"}``); llama-server and vLLM answer ``POST /tokenize``
  (``{"content"}`` → ``{"tokens"}``, ``{"prompt", "model"}`` → ``{"count"}``). Both sit at the
  server's root, beside ``/v1``. The first that answers is remembered for the engine; when
  both answer 404, 405 or 422 the engine has none and is not asked again. A count that fails
  otherwise (a timeout: llama-cpp-python's server tokenizes only between completions) falls
  back to the estimate for that turn. Counts are cached by a hash of the text, so each
  message is counted once, not once per turn.
- **The estimate**: a third of the characters, rounded up. Text in English runs about four
  characters a token, so this overestimates it (trimming a little early); text in scripts of
  one or two characters a token (Chinese, Japanese) it can underestimate, and then a long
  conversation may still reach the engine's limit (an HTTP 400, which ends the turn or hands
  it to a fallback).

Before either, a bound that needs no count: no token is shorter than one UTF-8 byte, so a
conversation whose bytes fit is sent without asking anything.

The chat template's own tokens (role markers, a default system prompt some templates add) are
not in the count: ``MESSAGE_OVERHEAD`` per message and ``PROMPT_OVERHEAD`` per prompt stand in
for them.

The context comes from the ``[[engines]]`` block's ``context`` when set, else from what
``/v1/models`` says of the model (vLLM's ``max_model_len``, ``context_length``, llama-server's
``meta.n_ctx_train``, the model's training context: a llama-server started with a smaller
``--ctx-size`` needs ``context`` set); when neither says, nothing is trimmed.
"""

from __future__ import annotations

import math
from typing import Any

MESSAGE_OVERHEAD = 8  # a chat template's tokens around one message (ChatML: "<|im_start|>user\n", "<|im_end|>\n")
PROMPT_OVERHEAD = 32  # the generation prompt and a default system prompt some templates add


def estimate(text: str) -> int:
    """A third of the characters, rounded up (see the module's docstring for how close)."""
    return math.ceil(len(text) / 3)


def upper_bound(text: str) -> int:
    """At most this many tokens: one per UTF-8 byte, and one for a leading space."""
    return len(text.encode("utf-8")) + 1


def context_of(entry: dict[str, Any]) -> int:
    """The context an engine's ``/v1/models`` entry names, or 0 when it names none."""
    meta = entry.get("meta")
    for value in (entry.get("max_model_len"), entry.get("context_length"), meta.get("n_ctx_train") if isinstance(meta, dict) else None):
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return 0
