"""The prompt line: an Input that leaves alt+key to the workbench's bindings, and does not blink.

A real terminal sends alt+c as ESC c, which Textual reports as the key ``alt+c`` with the
printable character ``c``: a plain Input would type the ``c`` and swallow the key. A blinking
cursor redraws twice a second, which is bandwidth over a slow SSH link.
"""

from __future__ import annotations

from textual import events
from textual.widgets import Input


class PromptInput(Input):
    def on_mount(self) -> None:
        self.cursor_blink = False

    async def _on_key(self, event: events.Key) -> None:
        if event.key.startswith("alt+"):
            event.prevent_default()  # not text: let it reach the bindings
