"""The run header: one line over the panes while a team run goes on (team, kind, step, round,
limits used, the guard's last verdict), and how it ended once it has. Each member's turn
streams in that member's own pane as any turn does; this only says where the run stands."""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.text import Text
from textual.widgets import Static

from enclave.text import plural, safe_text
from enclave.views import RunView


@dataclass
class _Run:
    started: RunView
    step: int = 0
    turns: int = 0
    verdict: str = ""
    ended: RunView | None = None
    speakers: list[str] = field(default_factory=list)


class RunBar(Static):
    """Hidden until a run starts; shows the latest run."""

    DEFAULT_CSS = """
    RunBar { height: 1; background: $boost; color: $text; padding: 0 1; display: none; }
    """

    def __init__(self) -> None:
        super().__init__(id="run-bar")
        self.runs: dict[str, _Run] = {}
        self.current = ""  # the run shown

    def update_run(self, view: RunView) -> None:
        if view.event == "started":
            self.runs[view.run_id] = _Run(view)
            self.current = view.run_id
        run = self.runs.get(view.run_id)
        if run is None:  # it began before this client attached
            return
        if view.event == "verdict":
            what = f"{view.checked}'s reply" if view.checked else "the message"
            run.verdict = f"{view.guard} {'allows' if view.allowed else 'blocks'} {what}: {view.reason}"
        elif view.event == "finished":
            run.ended = view
        self._show()

    def member_turn(self, run_id: str, agent: str, step: int) -> None:
        """A turn of the run started (a member's, the director's or the guard's)."""
        run = self.runs.get(run_id)
        if run is None:
            return
        run.step = step
        if agent in run.started.members:
            run.turns += 1
            run.speakers.append(agent)
        self._show()

    @property
    def live_run(self) -> str:
        """The id of the run shown while it goes on, else ''."""
        run = self.runs.get(self.current)
        return self.current if run is not None and run.ended is None else ""

    @property
    def line(self) -> str:
        run = self.runs.get(self.current)
        if run is None:
            return ""
        s = run.started
        head = f"run {s.run_id} · {s.team} ({s.kind}: {', '.join(s.members)})"
        if run.ended is not None:
            e = run.ended
            return f"■ {head} · {e.end} · {plural(e.turns, 'turn')}, {plural(e.tokens, 'token')} · {e.reason}"
        parts = [f"▶ {head}", f"step {run.step}"]
        if s.kind == "roundtable" and s.members:
            parts.append(f"round {max(run.turns - 1, 0) // len(s.members) + 1}")
        parts.append(f"turns {run.turns}/{s.max_turns} · tokens ≤ {s.max_tokens}")
        if run.speakers:
            parts.append(f"speaking: {run.speakers[-1]}")
        if run.verdict:
            parts.append(f"guard: {run.verdict}")
        return " · ".join(parts)

    def _show(self) -> None:
        self.display = bool(self.current)
        self.update(Text(safe_text(self.line), no_wrap=True, overflow="ellipsis"))
