"""The workbench: one live pane per agent, a prompt line, keys for everything."""

from __future__ import annotations

import asyncio
from pathlib import Path

from textual import events, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Grid
from textual.widgets import Footer, Input, Static

from .commands import PromptError, parse_prompt
from .protocol import DaemonClient, DaemonError
from .widgets.agent_pane import AgentPane


class EnclaveApp(App[None]):
    CSS_PATH = "enclave.tcss"
    TITLE = "enclave"
    BINDINGS = [
        Binding("alt+right", "select_offset(1)", "Next pane", id="pane.next"),
        Binding("alt+left", "select_offset(-1)", "Prev pane", id="pane.previous"),
        *[Binding(f"alt+{i}", f"select_pane({i})", f"Pane {i}", show=False, id=f"pane.{i}") for i in range(1, 10)],
        Binding("alt+z", "zoom", "Zoom", id="pane.zoom"),
        Binding("escape", "cancel_selected", "Cancel turn", id="turn.cancel"),
        Binding("ctrl+x", "cancel_all", "Cancel all", id="turn.cancel_all"),
        Binding("ctrl+q", "quit", "Quit", id="app.quit"),
    ]

    WIDE = 120  # columns from which panes sit two side by side

    def __init__(self, socket_path: Path, first_message: str | None = None) -> None:
        super().__init__()
        self.client = DaemonClient(socket_path)
        self.first_message = first_message  # sent to every agent once attached (the demo)
        self.panes: dict[str, AgentPane] = {}
        self.selected = 0
        self.attached = False  # panes and transcripts are shown; live events follow

    def compose(self) -> ComposeResult:
        yield Static(id="banner")
        yield Grid(id="panes")
        yield Input(placeholder="message to the selected agent · /all TEXT · /to a,b TEXT", id="prompt")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#prompt", Input).focus()
        self.attach()

    # ---- daemon ----------------------------------------------------------------------------

    @work(exclusive=True, group="daemon")
    async def attach(self) -> None:
        """Show the daemon's agents and their transcripts, then follow every turn live.

        Watch is subscribed before the transcripts are read, so a turn that ends in between is
        not lost; its events are skipped if the transcript already has it.
        """
        try:
            await self.client.connect()
            agents = await self.client.list_agents()
            grid = self.query_one("#panes", Grid)
            for i, agent in enumerate(agents, start=1):
                self.panes[agent.name] = AgentPane(agent, i)
            await grid.mount_all(self.panes.values())
            self._select(0)
            self._layout()
            events = self.client.watch()
            first = asyncio.ensure_future(anext(events))
            shown: set[str] = set()
            for name, pane in self.panes.items():
                messages = await self.client.transcript(name)
                shown |= {m.turn_id for m in messages if m.turn_id}
                await pane.show_transcript(messages)
            self.attached = True
            if self.first_message:
                self.send(self.first_message, list(self.panes))
            event = await first
            while True:
                pane = self.panes.get(event.agent)
                if pane is not None and event.turn_id not in shown:
                    await pane.handle(event)
                event = await anext(events)
        except DaemonError as exc:
            self.show_banner(str(exc))
        except StopAsyncIteration:
            self.show_banner("enclaved ended the event stream; restart `enclave` to attach again")

    def show_banner(self, text: str) -> None:
        banner = self.query_one("#banner", Static)
        banner.update(text)
        banner.set_class(bool(text), "visible")

    # ---- prompt ----------------------------------------------------------------------------

    async def on_input_submitted(self, event: Input.Submitted) -> None:
        if not event.value.strip() or not self.panes:
            return
        try:
            send = parse_prompt(event.value, list(self.panes))
        except PromptError as exc:
            self.notify(str(exc), severity="error")
            return
        event.input.value = ""
        self.send(send.text, send.agents or [self.selected_pane.agent.name])

    @work(group="send")
    async def send(self, text: str, agents: list[str]) -> None:
        try:
            await self.client.send(text, agents)
        except DaemonError as exc:
            self.notify(str(exc), severity="error")

    # ---- panes -----------------------------------------------------------------------------

    @property
    def selected_pane(self) -> AgentPane:
        return list(self.panes.values())[self.selected]

    def _select(self, index: int) -> None:
        panes = list(self.panes.values())
        if not panes:
            return
        self.selected = index % len(panes)
        for i, pane in enumerate(panes):
            pane.selected = i == self.selected

    def on_resize(self, event: events.Resize) -> None:
        self._layout(event.size.width)

    def _layout(self, width: int | None = None) -> None:
        """Two panes side by side on a wide terminal, one column otherwise or when zoomed."""
        grid = self.query_one("#panes", Grid)
        wide = (width or self.size.width) >= self.WIDE and len(self.panes) > 1
        grid.styles.grid_size_columns = 2 if wide and not grid.has_class("zoomed") else 1

    def action_zoom(self) -> None:
        """Show only the selected pane, full size; again to show them all."""
        self.query_one("#panes", Grid).toggle_class("zoomed")
        self._layout()

    def action_select_offset(self, offset: int) -> None:
        self._select(self.selected + offset)

    def action_select_pane(self, number: int) -> None:
        if number <= len(self.panes):
            self._select(number - 1)

    @work(group="cancel")
    async def action_cancel_selected(self) -> None:
        if self.panes:
            await self._cancel(self.selected_pane.agent.name)

    @work(group="cancel")
    async def action_cancel_all(self) -> None:
        await self._cancel(None)

    async def _cancel(self, agent: str | None) -> None:
        try:
            await self.client.cancel(agent)
        except DaemonError as exc:
            self.notify(str(exc), severity="error")

    async def on_unmount(self) -> None:
        await self.client.close()
