"""Create or edit an agent: name, model, system prompt, temperature, max tokens; or delete it.

The screen validates what it can (numbers), the daemon the rest; either way a mistake shows
as one line on the screen, which stays open with what was typed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Literal

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static, TextArea

from enclave.errors import DaemonError
from enclave.views import AgentView, Sampling

EditorResult = Literal["saved", "delete"] | None
Save = Callable[[AgentView], Awaitable[None]]


class AgentEditor(ModalScreen[EditorResult]):
    CSS_PATH = "dialog.tcss"
    # priority: they work from inside the text fields too (TextArea has its own ctrl+d)
    BINDINGS = [
        Binding("ctrl+s", "save", "Save", id="editor.save", priority=True),
        Binding("ctrl+d", "delete", "Delete agent", id="editor.delete", priority=True),
        Binding("escape", "dismiss_editor", "Cancel", id="editor.cancel"),
    ]

    def __init__(self, agent: AgentView | None, models: list[str], save: Save, default_model: str = "") -> None:
        """``default_model`` is offered for a new agent (the workbench passes the selected
        pane's model)."""
        super().__init__(classes="dialog-screen")
        self.agent = agent
        self.models = models
        self._save = save
        self.default_model = agent.model if agent else default_model

    def compose(self) -> ComposeResult:
        a = self.agent
        sampling = a.sampling if a else Sampling()
        options = [(m, m) for m in self.models]
        current = self.default_model if self.default_model in self.models else (self.models[0] if self.models else Select.BLANK)
        temperature = "" if sampling.temperature is None else f"{sampling.temperature:g}"
        max_tokens = "" if sampling.max_tokens is None else str(sampling.max_tokens)
        with VerticalScroll(classes="dialog editor"):
            yield Static(f"edit agent {a.name}" if a else "new agent", classes="question")
            with Horizontal(classes="field"):
                yield Label("name")
                yield Input(a.name if a else "", id="name", disabled=a is not None, placeholder="letters, digits, . _ -", compact=True)
            with Horizontal(classes="field"):
                yield Label("model")
                yield Select(options, value=current, id="model", allow_blank=not self.models, compact=True)
            with Horizontal(classes="field"):
                yield Label("temperature")
                yield Input(temperature, id="temperature", type="number", placeholder="default 0.8", compact=True)
            with Horizontal(classes="field"):
                yield Label("max tokens")
                yield Input(max_tokens, id="max_tokens", type="integer", placeholder="per reply, default 256", compact=True)
            yield Label("system prompt")
            yield TextArea(a.system if a else "", id="system", soft_wrap=True, show_line_numbers=False, compact=True)
            yield Static(id="editor-error", classes="error-line")
            with Horizontal(classes="buttons"):
                yield Button("Save ^s", id="save", variant="primary", compact=True)
                if a is not None:
                    yield Button("Delete ^d", id="delete", variant="error", compact=True)
                yield Button("Cancel esc", id="cancel", compact=True)

    def on_mount(self) -> None:
        for field in self.query(Input):
            field.cursor_blink = False  # no redraws twice a second over SSH
        for area in self.query(TextArea):
            area.cursor_blink = False
        self.query_one("#system" if self.agent else "#name").focus()

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
        if self.agent is not None:
            self.dismiss("delete")

    def _number(self, field: str, kind: type[float] | type[int]) -> float | None:
        """A number field: None when empty; ValueError, naming the field, when not a number."""
        text = self.query_one(f"#{field}", Input).value.strip()
        try:
            return kind(text) if text else None
        except ValueError:
            raise ValueError(f"{field.replace('_', ' ')} must be a number") from None

    def _form(self) -> AgentView:
        """The agent as the form describes it; ValueError names a field that cannot be read.
        Sampling settings and fallbacks the form does not show are kept as they were (less the
        model chosen, which cannot be its own fallback)."""
        temperature = self._number("temperature", float)
        max_tokens = self._number("max_tokens", int)
        sampling = replace(
            self.agent.sampling if self.agent else Sampling(),
            temperature=temperature,
            max_tokens=None if max_tokens is None else int(max_tokens),
        )
        chosen = self.query_one("#model", Select).value
        model = chosen if isinstance(chosen, str) else ""
        return AgentView(
            name=self.query_one("#name", Input).value.strip(),
            model=model,
            system=self.query_one("#system", TextArea).text,
            sampling=sampling,
            fallbacks=tuple(f for f in self.agent.fallbacks if f != model) if self.agent else (),
        )

    @work(exclusive=True, group="editor-save")
    async def action_save(self) -> None:
        error = self.query_one("#editor-error", Static)
        try:
            await self._save(self._form())
        except (ValueError, DaemonError) as exc:
            error.update(str(exc))
            return
        self.dismiss("saved")
