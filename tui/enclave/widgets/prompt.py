"""The prompt line: an Input that leaves alt+key to the workbench's bindings, does not blink,
and keeps a multi-line paste whole.

A real terminal sends alt+c as ESC c, which Textual reports as the key ``alt+c`` with the
printable character ``c``: a plain Input would type the ``c`` and swallow the key. A blinking
cursor redraws twice a second, which is bandwidth over a slow SSH link.

A pasted text's line breaks show as ``⏎`` on the one line and are sent as line breaks
(``message``); a plain Input would keep only the first line of a paste.
"""

from __future__ import annotations

from textual import events
from textual.widgets import Input

NEWLINE = "⏎"


class PromptInput(Input):
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
