"""Create or edit a team: its kind, members in speaking order, director, limits, stop text,
per-member instructions and guard; or delete it. Empty limits are the daemon's defaults."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Checkbox, Input, Label, Select, Static, TextArea

from enclave.screens.form import FormScreen
from enclave.text import seconds
from enclave.views import GuardView, TeamView

KINDS = ("chain", "roundtable", "director", "escalate")
Save = Callable[[TeamView], Awaitable[object]]


def _duration(value: float | None) -> str:
    return "" if value is None else f"{value:g}s"


class TeamEditor(FormScreen[TeamView]):
    def __init__(self, team: TeamView | None, agents: list[str], save: Save) -> None:
        """``agents``: the names a member, director or guard may take."""
        super().__init__(team, save)
        self.team = team
        self.agents = agents

    def compose(self) -> ComposeResult:
        t = self.team
        g = t.guard if t else None
        people = [(a, a) for a in self.agents]
        with VerticalScroll(classes="dialog editor team-editor"):
            yield Static(f"edit team {t.name}" if t else "new team", classes="question")
            yield from self._field(
                "name", Input(t.name if t else "", id="name", disabled=t is not None, placeholder="letters, digits, . _ -", compact=True)
            )
            yield from self._field(
                "kind", Select([(k, k) for k in KINDS], value=t.kind if t else "chain", id="kind", allow_blank=False, compact=True)
            )
            yield from self._field(
                "members", Input(",".join(t.members) if t else "", id="members", placeholder="a,b,c in speaking order", compact=True)
            )
            yield Static(f"agents: {', '.join(self.agents) or 'none yet'}", classes="hint", id="agents-hint")
            yield from self._field(
                "director",
                Select(people, value=t.director if t and t.director else Select.NULL, id="director", compact=True),
                "director-row",
            )
            yield from self._field("max turns", self._text("max_turns", t and t.max_turns, "member turns per run, default 8", "integer"))
            yield from self._field("max tokens", self._text("max_tokens", t and t.max_tokens, "per run, default 4000", "integer"))
            yield from self._field("timeout", self._text("timeout", _duration(t.timeout) if t else "", 'per run, like "300s" (default)'))
            yield from self._field("stop text", self._text("stop_text", t.stop_text if t else "", "a reply containing it ends the run"))
            yield Label("instructions, one a line: `member: text` (goes before its input)")
            yield TextArea(
                "\n".join(f"{m}: {text}" for m, text in t.instructions) if t else "", id="instructions", soft_wrap=True, compact=True
            )
            yield from self._field(
                "guard", Select(people, value=g.agent if g else Select.NULL, id="guard", prompt="no guard", compact=True)
            )
            yield Checkbox("the guard checks the message first", g.input if g else True, id="guard_input", compact=True)
            yield from self._field(
                "replies",
                Select(
                    [("hold until allowed", "hold"), ("stream, flag after", "after"), ("not checked", "none")],
                    value=g.output if g else "hold",
                    id="guard_output",
                    allow_blank=False,
                    compact=True,
                ),
            )
            yield from self._field(
                "on block",
                Select(
                    [("stop the run", "stop"), ("skip the reply", "skip")],
                    value=g.on_block if g else "stop",
                    id="guard_on_block",
                    allow_blank=False,
                    compact=True,
                ),
            )
            yield from self._field(
                "guard timeout",
                self._text("guard_timeout", _duration(g.timeout) if g else "", "a check that takes longer blocks, default 60s"),
            )
            yield Static(id="editor-error", classes="error-line")
            with Horizontal(classes="buttons"):
                yield Button("Save ^s", id="save", variant="primary", compact=True)
                if t is not None:
                    yield Button("Delete ^d", id="delete", variant="error", compact=True)
                yield Button("Cancel esc", id="cancel", compact=True)

    @staticmethod
    def _field(label: str, widget: Input | Select[str], row: str | None = None) -> ComposeResult:
        with Horizontal(classes="field", id=row):
            yield Label(label)
            yield widget

    @staticmethod
    def _text(field: str, value: object, placeholder: str, kind: str = "text") -> Input:
        text = "" if value is None or value == "" else str(value)
        return Input(text, id=field, type=kind, placeholder=placeholder, compact=True)  # type: ignore[arg-type]

    def on_mount(self) -> None:
        super().on_mount()
        self._show_director()
        self.query_one("#members" if self.team else "#name").focus()

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "kind":
            self._show_director()

    def _show_director(self) -> None:
        """Only a director team has a director: the field shows for that kind alone."""
        self.query_one("#director-row").display = self._choice("kind") == "director"

    def _seconds(self, field: str) -> float | None:
        text = self.query_one(f"#{field}", Input).value.strip()
        try:
            return seconds(text) if text else None
        except ValueError as exc:
            raise ValueError(f"{field.replace('_', ' ')}: {exc}") from None

    def _instructions(self) -> tuple[tuple[str, str], ...]:
        pairs = []
        for number, line in enumerate(self.query_one("#instructions", TextArea).text.splitlines(), start=1):
            if not line.strip():
                continue
            member, sep, text = line.partition(":")
            if not sep or not member.strip() or not text.strip():
                raise ValueError(f"instructions line {number}: write it as `member: text`")
            pairs.append((member.strip(), text.strip()))
        return tuple(pairs)

    def _choice(self, field: str) -> str:
        value = self.query_one(f"#{field}", Select).value
        return value if isinstance(value, str) else ""

    def _form(self) -> TeamView:
        max_turns = self._number("max_turns", int)
        max_tokens = self._number("max_tokens", int)
        guard = self._choice("guard")
        return TeamView(
            name=self.query_one("#name", Input).value.strip(),
            kind=self._choice("kind"),
            members=tuple(m.strip() for m in self.query_one("#members", Input).value.split(",") if m.strip()),
            director=self._choice("director") if self._choice("kind") == "director" else "",
            max_turns=None if max_turns is None else int(max_turns),
            max_tokens=None if max_tokens is None else int(max_tokens),
            timeout=self._seconds("timeout"),
            stop_text=self.query_one("#stop_text", Input).value,
            instructions=self._instructions(),
            guard=GuardView(
                agent=guard,
                input=self.query_one("#guard_input", Checkbox).value,
                output=self._choice("guard_output"),
                on_block=self._choice("guard_on_block"),
                timeout=self._seconds("guard_timeout"),
            )
            if guard
            else None,
        )
