"""What the agent and team editors share: their keys (one keymap entry saves in either), the
buttons, number fields, and a save that keeps the screen open with one line when it fails.

The screen validates what it can (numbers, durations), the daemon the rest; either way a
mistake shows as one line on the screen, which stays open with what was typed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, Literal, TypeVar

from textual import work
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static, TextArea

from enclave.errors import DaemonError

EditorResult = Literal["saved", "delete"] | None
V = TypeVar("V")


class FormScreen(ModalScreen[EditorResult], Generic[V]):
    """An editor of one thing (``V``): ``existing`` is None for a new one. Subclasses compose
    the fields (with a ``#editor-error`` Static and save/delete/cancel buttons) and read them
    back in ``_form``."""

    CSS_PATH = "dialog.tcss"
    # priority: they work from inside the text fields too (TextArea has its own ctrl+d)
    BINDINGS = [
        Binding("ctrl+s", "save", "Save", id="editor.save", priority=True),
        Binding("ctrl+d", "delete", "Delete", id="editor.delete", priority=True),
        Binding("escape", "dismiss_editor", "Cancel", id="editor.cancel"),
    ]

    def __init__(self, existing: V | None, save: Callable[[V], Awaitable[object]]) -> None:
        super().__init__(classes="dialog-screen")
        self.existing = existing
        self._save = save

    def on_mount(self) -> None:
        for field in self.query(Input):
            field.cursor_blink = False  # no redraws twice a second over SSH
        for area in self.query(TextArea):
            area.cursor_blink = False

    def on_button_pressed(self, event: Button.Pressed) -> None:
        actions: dict[str, Callable[[], object]] = {
            "save": self.action_save,
            "delete": self.action_delete,
            "cancel": self.action_dismiss_editor,
        }
        actions[event.button.id or "cancel"]()

    def action_dismiss_editor(self) -> None:
        self.dismiss(None)

    def action_delete(self) -> None:
        if self.existing is not None:
            self.dismiss("delete")

    def _number(self, field: str, kind: type[float] | type[int]) -> float | None:
        """A number field: None when empty; ValueError, naming the field, when not a number."""
        text = self.query_one(f"#{field}", Input).value.strip()
        try:
            return kind(text) if text else None
        except ValueError:
            raise ValueError(f"{field.replace('_', ' ')} must be a number") from None

    def _form(self) -> V:
        """The thing as the form describes it; ValueError names a field that cannot be read."""
        raise NotImplementedError

    @work(exclusive=True, group="editor-save")
    async def action_save(self) -> None:
        error = self.query_one("#editor-error", Static)
        try:
            await self._save(self._form())
        except (ValueError, DaemonError) as exc:
            error.update(str(exc))
            return
        self.dismiss("saved")
