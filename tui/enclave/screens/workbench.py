"""The workbench: one live pane per agent, a prompt line, a models panel, keys for everything.

What the daemon holds arrives from the session (``enclave.session``) as messages; the screen
routes turn events to their pane, and calls the daemon for what the person asks.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable
from typing import TypeVar

from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid
from textual.geometry import Size
from textual.screen import Screen
from textual.widgets import Input, Static

from enclave.commands import PromptError, parse_prompt
from enclave.errors import DaemonError
from enclave.messages import AgentChanged, Attached, Disconnected, RunUpdate, SessionNotice, StatusChanged, TurnEvent, TurnStarted
from enclave.screens.agent_editor import AgentEditor
from enclave.screens.confirm import ConfirmScreen
from enclave.screens.form import EditorResult
from enclave.screens.team_picker import TeamPicker
from enclave.session import Session
from enclave.team_commands import RunTeam, parse_team_command
from enclave.terminal import tmux_copy
from enclave.views import AgentView, StatusView
from enclave.widgets.agent_pane import AgentPane
from enclave.widgets.key_footer import KeyFooter
from enclave.widgets.model_panel import ModelPanel
from enclave.widgets.prompt import PromptInput
from enclave.widgets.run_bar import RunBar

_CODE_BLOCK = re.compile(r"```[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
T = TypeVar("T")


class WorkbenchScreen(Screen[None]):
    CSS_PATH = "workbench.tcss"
    # Every action has an id (for [keys] in the settings file) and a command palette entry.
    # Quit is the app's, repeated here so that the footer shows it first, as it always did.
    # The footer shows the keys in this order as far as they fit whole: most needed first.
    BINDINGS = [
        Binding("ctrl+q", "app.quit", "Quit", id="app.quit"),
        Binding("escape", "cancel_selected", "Cancel turn", id="turn.cancel"),
        Binding("alt+right", "select_offset(1)", "Next pane", id="pane.next"),
        Binding("alt+left", "select_offset(-1)", "Previous pane", show=False, id="pane.previous"),
        *[Binding(f"alt+{i}", f"select_pane({i})", f"Pane {i}", show=False, id=f"pane.{i}") for i in range(1, 10)],
        Binding("alt+z", "zoom", "Zoom", id="pane.zoom"),
        Binding("pageup", "scroll_pane('page_up')", "Scroll up", show=False, id="pane.page_up"),
        Binding("pagedown", "scroll_pane('page_down')", "Scroll down", show=False, id="pane.page_down"),
        Binding("ctrl+home", "scroll_pane('top')", "Scroll to the top", show=False, id="pane.top"),
        Binding("ctrl+end", "scroll_pane('bottom')", "Scroll to the end", show=False, id="pane.bottom"),
        Binding("alt+a", "broadcast", "Send to all", id="prompt.broadcast"),
        Binding("alt+x", "cancel_all", "Cancel all", id="turn.cancel_all"),
        Binding("alt+l", "clear", "Clear conversation", show=False, id="agent.clear"),
        Binding("alt+n", "new_agent", "New agent", show=False, id="agent.new"),
        Binding("alt+e", "edit_agent", "Edit agent", show=False, id="agent.edit"),
        Binding("alt+t", "teams", "Teams", show=False, id="team.picker"),
        Binding("alt+m", "toggle_models", "Models", id="models.toggle"),
        Binding("alt+u", "app.audit", "Audit log", show=False, id="audit.open"),
        Binding("alt+c", "copy_answer", "Copy answer", id="copy.answer"),
        Binding("alt+k", "copy_code", "Copy code block", show=False, id="copy.code"),
    ]

    WIDE = 120  # columns from which panes sit two side by side
    WIDER = 150  # columns from which three panes sit side by side
    COMPACT_ROWS = 8  # a pane smaller than this in one column folds the others

    def __init__(self, session: Session, *, stream_hz: int, first_message: str | None = None) -> None:
        super().__init__()
        self.session = session
        self.client = session.client
        self.stream_hz = stream_hz
        self.first_message = first_message  # sent to every agent once attached (the demo)
        self.panes: dict[str, AgentPane] = {}
        self.selected = 0
        self.attached = False  # panes and transcripts are shown; live events follow
        self.context_sizes: dict[str, int] = {}  # model -> tokens per sequence
        self.status: StatusView | None = None  # the latest, for the models panel
        self._laid_out: tuple[object, ...] = ()  # what _layout last set: (columns, compact, spans, rows)

    def compose(self) -> ComposeResult:
        yield Static(id="banner")
        yield Static(id="empty")
        yield RunBar()
        yield Grid(id="panes")
        yield ModelPanel()
        yield PromptInput(placeholder="message to the selected agent · /all TEXT · /to a,b TEXT · alt+a: to all", id="prompt")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one(ModelPanel).display = False
        self.query_one("#prompt", Input).focus()
        self.show_banner(f"connecting to enclaved on {self.client.socket_path} …")
        self.set_interval(1 / self.stream_hz, self._flush_panes)
        self.run_worker(self.session.run(self), exclusive=True, group="daemon")

    def _flush_panes(self) -> None:
        """Streamed text reaches the screen in ticks, every pane in the same frame."""
        for pane in list(self.panes.values()):
            pane.flush()

    # ---- what the session tells -----------------------------------------------------------

    @on(Attached)
    async def _attached(self, message: Attached) -> None:
        await self._show_agents(message.agents)
        for name, pane in self.panes.items():
            pane.show_transcript(message.transcripts.get(name, []))
        self.attached = True
        self._show_empty()
        self.show_banner("")
        if self.first_message:
            self.send(self.first_message, list(self.panes))
            self.first_message = None

    @on(RunUpdate)
    def _run_update(self, update: RunUpdate) -> None:
        self.query_one(RunBar).update_run(update.run)

    @on(TurnEvent)
    def _turn_event(self, event: TurnEvent) -> None:
        if isinstance(event, TurnStarted) and event.run_id:
            self.query_one(RunBar).member_turn(event.run_id, event.agent, event.step)
        pane = self.panes.get(event.agent)
        if pane is not None:
            pane.handle(event)

    @on(AgentChanged)
    async def _agent_changed(self, changed: AgentChanged) -> None:
        agent = changed.agent
        pane = self.panes.get(agent.name)
        if changed.change == "created" and pane is None:
            await self._show_agents([*(p.agent for p in self.panes.values()), agent], fresh=False)
        elif changed.change == "deleted" and pane is not None:
            await self._show_agents([p.agent for p in self.panes.values() if p is not pane], fresh=False)
        elif changed.change == "updated" and pane is not None:
            pane.set_agent(agent)
            pane.set_context_size(self.context_sizes.get(agent.model, 0))
        elif changed.change == "cleared" and pane is not None:
            pane.set_agent(agent)
            pane.show_transcript([])

    @on(StatusChanged)
    def _status_changed(self, message: StatusChanged) -> None:
        self.status = status = message.status
        self.context_sizes = {m.name: m.context_size for m in status.models}
        for pane in self.panes.values():
            pane.set_context_size(self.context_sizes.get(pane.agent.model, 0))
        panel = self.query_one(ModelPanel)
        if panel.display:  # a hidden table still lays itself out on every change
            panel.show(status)
            self._layout()  # a model more or less changes the panel's height
        self._show_empty()

    def _empty_text(self) -> str:
        """What to do when there is no agent to talk to ("" when there is), in Textual markup
        (the commands in bold)."""
        if self.panes or not self.attached:
            return ""
        if self.status is not None and not self.status.models:
            return (
                "No models yet: put a .gguf file in enclaved's models folder ([b]enclave models[/b] lists "
                "what it sees), or make a small test model with [b]enclave make-model models/demo.gguf[/b]."
            )
        return "No agents yet: alt+n creates one (or [b]enclave agent put NAME --model MODEL[/b])."

    def _show_empty(self) -> None:
        text = self._empty_text()
        empty = self.query_one("#empty", Static)
        empty.update(text)
        empty.display = bool(text)

    @on(Disconnected)
    def _disconnected(self, message: Disconnected) -> None:
        self.attached = False
        self._show_empty()
        for pane in self.panes.values():
            pane.disconnected()
        state = "disconnected" if message.was_attached else "not connected"
        self.show_banner(f"{state} — retrying: {message.problem}", problem=True)

    @on(SessionNotice)
    def _notice(self, notice: SessionNotice) -> None:
        if notice.banner:
            self.show_banner(notice.text)
        else:
            self.notify(notice.text)

    def show_banner(self, text: str, *, problem: bool = False) -> None:
        """A line over the panes on the connection: news ("connecting …") or a ``problem``."""
        banner = self.query_one("#banner", Static)
        banner.update(text)
        banner.set_class(bool(text), "visible")
        banner.set_class(problem, "problem")

    async def _show_agents(self, agents: list[AgentView], fresh: bool = True) -> None:
        """One pane per agent, numbered 1…N in the daemon's order. Panes that stay keep what
        they show; if the order changed (a different daemon), the panes are built anew.
        ``fresh``: the agents were just listed by the daemon, so kept panes take their
        settings; otherwise (one agent added or removed) kept panes are only renumbered."""
        names = [a.name for a in agents]
        selected = self.selected_pane.agent.name if self.panes else None
        grid = self.query_one("#panes", Grid)
        kept = [n for n in self.panes if n in names]
        if kept != names[: len(kept)]:
            kept = []  # new panes only ever go at the end
        for name in [n for n in self.panes if n not in kept]:
            await self.panes.pop(name).remove()
        panes: dict[str, AgentPane] = {}
        new: list[AgentPane] = []
        for index, agent in enumerate(agents, start=1):
            pane = self.panes.get(agent.name)
            if pane is None:
                pane = AgentPane(agent, index)
                new.append(pane)
            else:
                pane.renumber(index)
                if fresh:
                    pane.set_agent(agent)
            pane.set_context_size(self.context_sizes.get(agent.model, 0))
            panes[agent.name] = pane
        self.panes = panes
        await grid.mount_all(new)  # kept panes come first in the daemon's order, new ones after
        self._select(names.index(selected) if selected in names else min(self.selected, max(len(names) - 1, 0)))
        self._layout()
        self._show_empty()

    # ---- prompt ----------------------------------------------------------------------------

    async def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "prompt" or not event.value.strip():
            return
        if not self.panes:
            self.notify(self._empty_text() or "not connected to enclaved yet", severity="warning")
            return
        message = PromptInput.message(event.value)  # a paste's ⏎ marks are line breaks, for teams too
        try:
            run = parse_team_command(message, list(self.panes))
            send = parse_prompt(message, list(self.panes)) if run is None else None
        except PromptError as exc:
            self.notify(str(exc), severity="error")
            return
        event.input.value = ""
        self.query_one("#prompt", PromptInput).remember(event.value)
        if run is not None:
            self.run_team(run, event.value)
            return
        assert send is not None
        self.send(send.text, send.agents or [self.selected_pane.agent.name], sent_from=event.value)

    def action_broadcast(self) -> None:
        """Send the prompt line, as it is, to every agent."""
        prompt = self.query_one("#prompt", PromptInput)
        if prompt.value.strip() and self.panes:
            self.send(PromptInput.message(prompt.value.strip()), list(self.panes), sent_from=prompt.value)
            prompt.remember(prompt.value)
            prompt.value = ""

    @work(group="send")
    async def send(self, text: str, agents: list[str], sent_from: str | None = None) -> None:
        """Start the turns. If the daemon refuses them or is gone, the line they came from
        (``sent_from``) goes back into the prompt, if it is empty, so nothing typed is lost."""
        if not await self._done(self.client.send(text, agents)) and sent_from is not None:
            prompt = self.query_one("#prompt", PromptInput)
            if not prompt.value:
                prompt.value = sent_from

    @work(group="send")
    async def run_team(self, run: RunTeam, sent_from: str) -> None:
        """Start a team run; its turns stream into the members' panes, the run bar says where
        it stands. A refused run puts its line back into an empty prompt."""
        if not await self._done(self.client.run_team(run.text, run.team, run.kind, run.members)):
            prompt = self.query_one("#prompt", PromptInput)
            if not prompt.value:
                prompt.value = sent_from

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
        self._layout()

    def on_resize(self, event: events.Resize) -> None:
        self._layout(event.size)

    def _layout(self, size: Size | None = None) -> None:
        """Fit the panes to the terminal.

        Wide: two columns (three panes side by side from 150 columns), an odd last pane
        spanning the row. Narrow: one column; if that leaves a pane fewer than
        ``COMPACT_ROWS`` rows, the other panes fold to their header line, so the selected
        conversation keeps the room and every agent's state stays in sight; with too little
        room even for that (a short terminal with the models panel open), the folded panes lose
        their borders too (one line each). Zoomed: the selected pane alone.
        """
        size = size or self.size
        grid = self.query_one("#panes", Grid)
        panes = list(self.panes.values())
        zoomed = grid.has_class("zoomed")
        n = len(panes)
        if zoomed or n <= 1 or size.width < self.WIDE:
            columns = 1
        else:
            columns = 3 if n == 3 and size.width >= self.WIDER else 2
        models = self.query_one(ModelPanel)
        cap = models.styles.max_height  # workbench.tcss: rows, header, scrollbar and border
        tallest = int(cap.value) if cap is not None else size.height
        room = size.height - 5 - (min(models.row_count + 4, tallest) if models.display else 0)
        compact = columns == 1 and not zoomed and n > 1 and room // n < self.COMPACT_ROWS
        tight = compact and room - 3 * (n - 1) < self.COMPACT_ROWS
        spans = tuple((pane, 2 if columns == 2 and n % 2 and i == n - 1 else 1) for i, pane in enumerate(panes))
        folded = "1" if tight else "3"
        rows = " ".join("1fr" if p.selected else folded for p in panes) if compact else "1fr"
        if (columns, compact, spans, rows) == self._laid_out:  # rows say whether it is tight
            return  # setting the same styles again would still lay the whole grid out anew
        self._laid_out = (columns, compact, spans, rows)
        grid.styles.grid_size_columns = columns
        grid.set_class(compact, "compact")
        grid.set_class(tight, "tight")
        for pane, span in spans:
            pane.styles.column_span = span
        grid.set_styles(f"grid-rows: {rows};")

    def action_zoom(self) -> None:
        """Show only the selected pane, full size; again to show them all."""
        self.query_one("#panes", Grid).toggle_class("zoomed")
        self._layout()

    def action_scroll_pane(self, where: str) -> None:
        """Scroll the selected pane (page up/down, top, bottom) without leaving the prompt."""
        if self.panes:
            self.selected_pane.scroll(where)

    def action_select_offset(self, offset: int) -> None:
        self._select(self.selected + offset)

    def action_select_pane(self, number: int) -> None:
        if number <= len(self.panes):
            self._select(number - 1)

    @work(group="cancel")
    async def action_cancel_selected(self) -> None:
        """Cancel the team run going on, if any, and the selected agent's turn; not while the
        person is typing (Esc then only leaves the text alone: clear the line first, or use
        alt+x). The run is cancelled whichever pane is selected: its speaker moves from pane
        to pane, so the person cannot be asked to chase it."""
        prompt = self.query_one("#prompt", PromptInput)
        if prompt.has_focus and prompt.value:
            self.notify("Esc cancels a turn when the prompt is empty; alt+x cancels every turn", severity="warning")
            return
        run = self.query_one(RunBar).live_run
        if run:
            await self._done(self.client.cancel_run(run))
        if self.panes:
            await self._call(self.client.cancel(self.selected_pane.agent.name))

    @work(group="cancel")
    async def action_cancel_all(self) -> None:
        await self._call(self.client.cancel(None))

    async def _call(self, call: Awaitable[T]) -> T | None:
        """Await a daemon call; a failure becomes a notification and None."""
        try:
            return await call
        except DaemonError as exc:
            self.notify(str(exc), severity="error")
            return None

    async def _done(self, call: Awaitable[None]) -> bool:
        """Await a daemon call that returns nothing: whether it succeeded."""
        try:
            await call
        except DaemonError as exc:
            self.notify(str(exc), severity="error")
            return False
        return True

    # ---- agents ----------------------------------------------------------------------------

    @work(group="agents")
    async def action_clear(self) -> None:
        if not self.panes:
            return
        name = self.selected_pane.agent.name
        if self.selected_pane.empty:
            self.notify(f"{name}'s conversation is empty: nothing to clear")
            return
        if await self.app.push_screen_wait(ConfirmScreen(f"Clear {name}'s conversation, for every client?", yes="Clear")):
            await self._done(self.client.clear(name))

    def action_new_agent(self) -> None:
        self._edit(None)

    def action_edit_agent(self) -> None:
        if self.panes:
            self._edit(self.selected_pane.agent)

    @work(group="agents")
    async def _edit(self, agent: AgentView | None) -> None:
        models = await self._call(self.client.list_models())
        if models is None:
            return
        usable = [m.name for m in models if m.usable]
        default = self.selected_pane.agent.model if self.panes else ""
        result: EditorResult = await self.app.push_screen_wait(AgentEditor(agent, usable, self._save_agent, default))
        if result == "delete" and agent is not None:
            question = f"Delete agent {agent.name} and its conversation, for every client?"
            if await self.app.push_screen_wait(ConfirmScreen(question, yes="Delete")):
                if await self._done(self.client.delete_agent(agent.name)):
                    self.notify(f"deleted agent {agent.name}")

    async def _save_agent(self, agent: AgentView) -> None:
        saved = await self.client.put_agent(agent)
        self.notify(f"saved agent {saved.name}")

    @work(group="teams")
    async def action_teams(self) -> None:
        """The team picker; the team picked goes into the prompt as ``/team NAME ``, for the
        message."""
        name = await self.app.push_screen_wait(TeamPicker(self.client))
        if name:
            prompt = self.query_one("#prompt", PromptInput)
            prompt.value = f"/team {name} "
            prompt.cursor_position = len(prompt.value)
            prompt.focus()

    # ---- models ----------------------------------------------------------------------------

    def action_toggle_models(self) -> None:
        panel = self.query_one(ModelPanel)
        panel.display = not panel.display
        if panel.display and self.status is not None:
            panel.show(self.status)
        (panel if panel.display else self.query_one("#prompt", Input)).focus()
        self._layout()  # the panel takes room from the panes

    @on(ModelPanel.LoadRequested)
    @work(group="models")
    async def load_or_unload(self, request: ModelPanel.LoadRequested) -> None:
        if request.load:
            self.notify(f"loading {request.model} …")
            reply = await self._call(self.client.load_model(request.model))
            if reply is None:
                return
            evicted = f"; unloaded {', '.join(reply.evicted)} to make room" if reply.evicted else ""
            self.notify(f"loaded {request.model} in {reply.load_seconds:.1f} s{evicted}")
        elif await self._done(self.client.unload_model(request.model)):
            self.notify(f"unloaded {request.model}")

    # ---- copy ------------------------------------------------------------------------------

    async def action_copy_answer(self) -> None:
        """The selected pane's last answer to the clipboard, through OSC 52 (works over SSH)."""
        if not self.panes:
            return
        pane = self.selected_pane
        if not pane.reply_text:
            self.notify(f"{pane.agent.name} has no answer to copy yet", severity="warning")
            return
        await self._copy(pane.reply_text, f"{pane.agent.name}'s last answer")

    async def action_copy_code(self) -> None:
        """The last code block of the selected pane's last answer to the clipboard."""
        if not self.panes:
            return
        pane = self.selected_pane
        blocks = _CODE_BLOCK.findall(pane.reply_text)
        if not blocks:
            self.notify(f"{pane.agent.name}'s last answer has no code block", severity="warning")
            return
        await self._copy(blocks[-1], f"a code block from {pane.agent.name}")

    async def _copy(self, text: str, what: str) -> None:
        self.app.copy_to_clipboard(text)
        how, reached = await tmux_copy(text) or ("", True)
        said = f"copied {what} ({len(text)} characters)"
        if not reached:
            self.notify(f"{said}, {how}", severity="warning")  # "…, but only into tmux's paste buffer …"
        else:
            self.notify(f"{said}; {how}" if how else said)
