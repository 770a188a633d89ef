"""Create or edit an agent: name, model, system prompt, temperature, max tokens; or delete it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace

from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Input, Label, Select, Static, TextArea

from enclave.screens.form import FormScreen
from enclave.views import AgentView, Sampling

Save = Callable[[AgentView], Awaitable[None]]


class AgentEditor(FormScreen[AgentView]):
    def __init__(self, agent: AgentView | None, models: list[str], save: Save, default_model: str = "") -> None:
        """``default_model`` is offered for a new agent (the workbench passes the selected
        pane's model)."""
        super().__init__(agent, save)
        self.agent = agent
        self.models = models
        self.default_model = agent.model if agent else default_model

    def compose(self) -> ComposeResult:
        a = self.agent
        sampling = a.sampling if a else Sampling()
        options = [(m, m) for m in self.models]
        current = self.default_model if self.default_model in self.models else (self.models[0] if self.models else Select.NULL)
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
        super().on_mount()
        # The first field that can change, so the form opens at its top (a name is fixed once made).
        self.query_one("#model" if self.agent else "#name").focus()

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
