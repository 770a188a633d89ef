"""The model status panel: every model the daemon sees, live from its Status stream.

Load and unload from here: the panel asks, the workbench screen calls the daemon.
"""

from __future__ import annotations

from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable

from enclave.text import human_bytes, kept_states, plural
from enclave.views import StatusView

COLUMNS = (
    "model",
    "state",
    "size",
    "quant",
    "memory",
    "ctx/agent",
    "slots",
    "active",
    "queued",
    "tok/s",
    "prompt tok/s",
    "first token p50/p95/p99",
    "turn p50/p95/p99",
    "kept",
)


def _latency(p: tuple[float, float, float] | None) -> str:
    return f"{p[0]:.2f}/{p[1]:.2f}/{p[2]:.2f} s" if p else "-"


class ModelPanel(DataTable[str]):
    """One row per model; ``l``/Enter loads the highlighted model, ``u`` unloads it, Esc closes."""

    BINDINGS = [
        Binding("l", "load", "Load model", id="models.load"),
        Binding("enter", "load", "Load model", show=False),  # the footer says `l`, as the README
        Binding("u", "unload", "Unload model", id="models.unload"),
        Binding("escape", "screen.toggle_models", "Close", id="models.close"),
    ]

    class LoadRequested(Message):
        def __init__(self, model: str, load: bool) -> None:
            super().__init__()
            self.model = model
            self.load = load

    def __init__(self) -> None:
        super().__init__(id="models", cursor_type="row", zebra_stripes=True)
        self.border_title = "models"

    def on_mount(self) -> None:
        for name in COLUMNS:
            self.add_column(name, key=name)

    def show(self, snapshot: StatusView) -> None:
        """Update the rows in place, so the highlighted row stays where the person left it."""
        names = [m.name for m in snapshot.models]
        for key in [k for k in self.rows if k.value not in names]:
            self.remove_row(key)
        for m in snapshot.models:
            cells = (
                m.name,
                m.state,
                human_bytes(m.size_bytes),
                m.quantization or "-",
                human_bytes(m.memory_bytes) if m.memory_bytes else "-",
                str(m.context_size),
                str(m.sequence_slots),
                str(m.active_sequences),
                str(m.queued_requests),
                f"{m.decode_tokens_per_second:.1f}",
                f"{m.prompt_tokens_per_second:.1f}",
                _latency(m.first_token),
                _latency(m.turn),
                kept_states(m.kept_states, m.kept_bytes, m.kept_budget_bytes),
            )
            if m.name in self.rows:
                for column, value in zip(COLUMNS, cells):
                    if self.get_cell(m.name, column) != value:
                        self.update_cell(m.name, column, value, update_width=True)
            else:
                self.add_row(*cells, key=m.name)
        budget = f" · budget {human_bytes(snapshot.memory_budget_bytes)}" if snapshot.memory_budget_bytes else ""
        self.border_subtitle = f"enclaved {snapshot.version} · {plural(snapshot.agents, 'agent')} · {plural(snapshot.active_turns, 'turn')}{budget} · l load · u unload"

    @property
    def highlighted_model(self) -> str | None:
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value

    def action_load(self) -> None:
        if self.highlighted_model:
            self.post_message(self.LoadRequested(self.highlighted_model, load=True))

    def action_unload(self) -> None:
        if self.highlighted_model:
            self.post_message(self.LoadRequested(self.highlighted_model, load=False))
