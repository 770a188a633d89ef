"""Conversations that lost their slot, kept warm: each one's KV sequence state in RAM.

With more agents than sequence slots, an agent whose slot went to another agent would read its
whole history again when it speaks next. Before a slot's cells are overwritten, the engine
saves that sequence's state (``llama_state_seq_get_data``) here with the tokens it holds; when
a prompt begins with an entry's tokens, the state is restored into the free slot
(``llama_state_seq_set_data``) and only the rest of the prompt is evaluated. Entries are kept
up to a byte budget, the least recently used going first.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from enclaved.engine.slots import prefix_length

MIN_TOKENS = 64  # a shorter conversation is cheaper to read again than to keep


@dataclass(frozen=True)
class SavedState:
    tokens: npt.NDArray[np.int32]  # what the sequence's cells held, in order
    data: bytes  # llama.cpp's serialized sequence state

    def common_prefix(self, prompt: npt.NDArray[np.int32]) -> int:
        return prefix_length(self.tokens, prompt)


class StateCache:
    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self._entries: OrderedDict[int, SavedState] = OrderedDict()  # least recently used first
        self._next = 0
        self.bytes = 0
        self.hits = 0

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, tokens: npt.NDArray[np.int32], data: bytes) -> None:
        """Keep a state (evicting the least recently used to make room); one that alone
        exceeds the budget is not kept."""
        if len(data) > self.budget_bytes or len(tokens) < MIN_TOKENS:
            return
        for key in [k for k, e in self._entries.items() if e.common_prefix(tokens) == len(e.tokens)]:
            self._drop(key)  # an older state of the same conversation: this one holds more
        while self.bytes + len(data) > self.budget_bytes:
            self._drop(next(iter(self._entries)))
        self._entries[self._next] = SavedState(tokens.copy(), data)
        self._next += 1
        self.bytes += len(data)

    def take(self, prompt: npt.NDArray[np.int32], better_than: int) -> SavedState | None:
        """The entry sharing the longest prefix with ``prompt``, if that is more than
        ``better_than`` tokens (what the slot already holds); it leaves the cache."""
        best, best_len = None, max(better_than, MIN_TOKENS - 1)
        for key, entry in self._entries.items():
            n = entry.common_prefix(prompt)
            if n > best_len:
                best, best_len = key, n
        if best is None:
            return None
        entry = self._entries[best]
        self._drop(best)
        self.hits += 1
        return entry

    def _drop(self, key: int) -> None:
        self.bytes -= len(self._entries.pop(key).data)
