"""The prompt line: an Input that leaves alt+key to the workbench's bindings, does not blink,
and keeps a multi-line paste whole.

A real terminal sends alt+c as ESC c, which Textual reports as the key ``alt+c`` with the
printable character ``c``: a plain Input would type the ``c`` and swallow the key. A blinking
cursor redraws twice a second, which is bandwidth over a slow SSH link.

A pasted text's line breaks show as ``⏎`` on the one line and are sent as line breaks
(``message``); a plain Input would keep only the first line of a paste.

Up and down walk back through the lines sent from this workbench (and forward again to what
was being typed).
"""

from __future__ import annotations

from typing import Any

from textual import events
from textual.binding import Binding
from textual.widgets import Input

NEWLINE = "⏎"


class PromptInput(Input):
    BINDINGS = [
        Binding("up", "history(-1)", "Previous message", show=False),
        Binding("down", "history(1)", "Next message", show=False),
    ]

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.history: list[str] = []
        self._recall = 0  # the line shown from history; len(history) = the draft
        self._draft = ""

    def on_mount(self) -> None:
        self.cursor_blink = False

    def _on_paste(self, event: events.Paste) -> None:
        if event.text:
            text = event.text.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n").replace("\n", NEWLINE)
            if self.selection.is_empty:
                self.insert_text_at_cursor(text)
            else:
                self.replace(text, *self.selection)
        event.prevent_default()  # Input's own handler would insert the first line again
        event.stop()

    @staticmethod
    def message(value: str) -> str:
        """What the line sends: its ``⏎`` marks as the line breaks they stand for."""
        return value.replace(NEWLINE, "\n")

    async def _on_key(self, event: events.Key) -> None:
        if event.key.startswith("alt+"):
            event.prevent_default()  # not text: let it reach the bindings

    # ---- history: up and down recall what was sent, as in a shell ---------------------------

    def remember(self, value: str) -> None:
        """A line that was sent: kept for up/down, even if the daemon then lost it."""
        if value and (not self.history or self.history[-1] != value):
            self.history.append(value)
        self._recall = len(self.history)

    def action_history(self, step: int) -> None:
        if not self.history:
            return
        if self._recall == len(self.history):
            self._draft = self.value  # what was being typed comes back after the newest line
        self._recall = max(0, min(len(self.history), self._recall + step))
        self.value = self.history[self._recall] if self._recall < len(self.history) else self._draft
        self.cursor_position = len(self.value)
