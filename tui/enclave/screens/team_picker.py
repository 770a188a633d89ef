"""The teams the daemon holds, one a row: Enter picks one to run (the workbench puts
``/team NAME`` into the prompt, for the message), n creates one, e edits the one under the
cursor, d deletes it. The list is read again after every change, so it shows what the daemon
holds, whoever changed it."""

from __future__ import annotations

from typing import Protocol

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from enclave.errors import DaemonError
from enclave.screens.confirm import ConfirmScreen
from enclave.screens.form import EditorResult
from enclave.screens.team_editor import TeamEditor
from enclave.views import AgentView, TeamView


class TeamStore(Protocol):
    """What the picker reads and changes teams through (the workbench's DaemonClient)."""

    async def list_teams(self) -> list[TeamView]: ...
    async def list_agents(self) -> list[AgentView]: ...
    async def put_team(self, team: TeamView) -> bool: ...
    async def delete_team(self, name: str) -> None: ...


def limits(team: TeamView) -> str:
    """``8 turns · 4000 tok · 300s · stop 'DONE'``, for what is set."""
    parts = [
        f"{team.max_turns} turns" if team.max_turns else "",
        f"{team.max_tokens} tok" if team.max_tokens else "",
        f"{team.timeout:g}s" if team.timeout else "",
        f"stop {team.stop_text!r}" if team.stop_text else "",
    ]
    return " · ".join(p for p in parts if p)


class TeamPicker(ModalScreen[str | None]):
    """Dismissed with the name of the team to run, or None."""

    CSS_PATH = "dialog.tcss"
    BINDINGS = [
        Binding("n", "new", "New team", id="teams.new"),
        Binding("e", "edit", "Edit team", id="teams.edit"),
        Binding("d,delete", "delete", "Delete team", id="teams.delete"),
        Binding("escape", "dismiss(None)", "Close", id="teams.close"),
    ]

    def __init__(self, store: TeamStore) -> None:
        super().__init__(classes="dialog-screen")
        self.store = store
        self.teams: list[TeamView] = []
        self.agents: list[str] = []

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog team-picker"):
            yield Static("teams", classes="question")
            yield DataTable(id="teams", cursor_type="row", zebra_stripes=True)
            yield Static(id="picker-empty")
            yield Static(id="picker-error", classes="error-line")
            yield Static("enter: run it · n: new · e: edit · d: delete · esc: close", classes="hint")

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns("NAME", "KIND", "MEMBERS", "GUARD", "LIMITS")
        self.reload()

    @work(exclusive=True, group="teams-read")
    async def reload(self, select: str = "") -> None:
        """Read the teams and agents again; keep the cursor on ``select`` (or where it was)."""
        table = self.query_one(DataTable)
        current = select or (self.teams[table.cursor_row].name if self.teams and table.cursor_row < len(self.teams) else "")
        try:
            self.teams = await self.store.list_teams()
            self.agents = [a.name for a in await self.store.list_agents()]
        except DaemonError as exc:
            self._say(str(exc))
            return
        self._say("")
        table.clear()
        for t in self.teams:
            members = ", ".join(t.members) + (f" (director {t.director})" if t.director else "")
            guard = f"{t.guard.agent} ({t.guard.output})" if t.guard else ""
            table.add_row(t.name, t.kind, members, guard, limits(t), key=t.name)
        names = [t.name for t in self.teams]
        if current in names:
            table.move_cursor(row=names.index(current))
        empty = self.query_one("#picker-empty", Static)
        empty.update("" if self.teams else "No teams yet: n creates one (or `enclave team put NAME --kind chain --members a,b`).")
        table.display = bool(self.teams)
        empty.display = not self.teams
        table.focus()

    def _say(self, error: str) -> None:
        line = self.query_one("#picker-error", Static)
        line.update(error)
        line.display = bool(error)

    @property
    def current(self) -> TeamView | None:
        row = self.query_one(DataTable).cursor_row
        return self.teams[row] if self.teams and 0 <= row < len(self.teams) else None

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value:
            self.dismiss(event.row_key.value)

    def action_new(self) -> None:
        self._edit(None)

    def action_edit(self) -> None:
        if self.current is not None:
            self._edit(self.current)

    @work(group="teams-change")
    async def _edit(self, team: TeamView | None) -> None:
        saved: list[str] = []

        async def save(edited: TeamView) -> None:
            created = await self.store.put_team(edited)
            saved.append(edited.name)
            self.notify(f"{'created' if created else 'saved'} team {edited.name}")

        result: EditorResult = await self.app.push_screen_wait(TeamEditor(team, self.agents, save))
        if result == "delete" and team is not None:
            await self._delete(team.name)
        self.reload(saved[-1] if saved else "")

    def action_delete(self) -> None:
        if self.current is not None:
            self._delete_and_reload(self.current.name)

    @work(group="teams-change")
    async def _delete_and_reload(self, name: str) -> None:
        await self._delete(name)
        self.reload()

    async def _delete(self, name: str) -> None:
        if not await self.app.push_screen_wait(ConfirmScreen(f"Delete team {name}, for every client?", yes="Delete")):
            return
        try:
            await self.store.delete_team(name)
        except DaemonError as exc:
            self._say(str(exc))
            return
        self.notify(f"deleted team {name}")
