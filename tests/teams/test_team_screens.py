"""The team picker and the team editor (alt+t), with Pilot against a real daemon on SmolLM2:
pick a team to run, create, edit and delete one, and mistakes that keep the editor open."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from textual.widgets import Checkbox, DataTable, Input, Select, Static, TextArea

from enclave.app import EnclaveApp
from enclave.screens.confirm import ConfirmScreen
from enclave.screens.team_editor import TeamEditor
from enclave.screens.team_picker import TeamPicker
from enclave_contract.v1 import teams_pb2
from tests.helpers import REAL_MODELS, Daemon, short_tmpdir, start_daemon, wait_until
from tests.teams.teamconfig import CONFIG

pytestmark = [pytest.mark.skipif(not (REAL_MODELS / "smollm2.gguf").exists(), reason="needs `make models`"), pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def d() -> Iterator[Daemon]:
    daemon = start_daemon(short_tmpdir(), REAL_MODELS, CONFIG)
    yield daemon
    daemon.stop()


def teams_of(d: Daemon) -> dict[str, teams_pb2.Team]:
    return {t.name: t for t in d.stubs().teams.ListTeams(teams_pb2.ListTeamsRequest(), timeout=10).teams}


def rows(picker: TeamPicker) -> list[str]:
    table = picker.query_one(DataTable)
    return [str(table.get_row_at(i)[0]) for i in range(table.row_count)]


def error_of(screen: TeamEditor) -> str:
    return str(screen.query_one("#editor-error", Static).render())


async def test_the_picker_lists_the_teams_and_enter_puts_one_into_the_prompt(d: Daemon) -> None:
    app = EnclaveApp(d.socket, spawn=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_until(pilot, lambda: app.workbench.attached)
        await pilot.press("alt+t")
        await wait_until(pilot, lambda: isinstance(app.screen, TeamPicker) and rows(app.screen) != [])
        picker = app.screen
        assert isinstance(picker, TeamPicker)
        assert set(rows(picker)) >= {"review", "round", "panel", "tiers", "guarded"}
        table = picker.query_one(DataTable)
        row = table.get_row_at(rows(picker).index("guarded"))
        assert row[1] == "chain" and row[2] == "writer, critic" and row[3] == "screener (hold)" and row[4] == "8 turns · 4000 tok · 300s"
        assert "(director boss)" in str(table.get_row_at(rows(picker).index("panel"))[2])
        for _ in range(rows(picker).index("round")):
            await pilot.press("down")
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.screen is app.workbench)
        prompt = app.workbench.query_one("#prompt", Input)
        assert prompt.value == "/team round " and prompt.has_focus and prompt.cursor_position == len(prompt.value)
        await pilot.press("alt+t")
        await wait_until(pilot, lambda: isinstance(app.screen, TeamPicker))
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is app.workbench)
        assert prompt.value == "/team round ", "closing the picker leaves the prompt alone"


async def test_create_edit_and_delete_a_team_from_the_workbench(d: Daemon) -> None:
    app = EnclaveApp(d.socket, spawn=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_until(pilot, lambda: app.workbench.attached)
        await pilot.press("alt+t")
        await wait_until(pilot, lambda: isinstance(app.screen, TeamPicker) and rows(app.screen) != [])
        picker = app.screen
        assert isinstance(picker, TeamPicker)
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, TeamEditor))
        editor = app.screen
        assert isinstance(editor, TeamEditor)
        assert not editor.query_one("#director-row").display, "only a director team has a director"
        await pilot.press(*"duo")
        editor.query_one("#members", Input).value = "writer,ghost"
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: "no agent named 'ghost'" in error_of(editor))
        assert "members" in error_of(editor) and app.screen is editor, "a mistake keeps the editor open with what was typed"
        editor.query_one("#members", Input).value = "writer, critic"
        editor.query_one("#timeout", Input).value = "soon"
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: "timeout" in error_of(editor) and "write it like" in error_of(editor))
        editor.query_one("#timeout", Input).value = "2m"
        editor.query_one("#instructions", TextArea).text = "critic Shorten this"
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: "instructions line 1" in error_of(editor))
        editor.query_one("#instructions", TextArea).text = "critic: Shorten this:\n"
        editor.query_one("#max_turns", Input).value = "3"
        editor.query_one("#stop_text", Input).value = "DONE"
        editor.query_one("#guard", Select).value = "screener"
        editor.query_one("#guard_output", Select).value = "after"
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: app.screen is picker and "duo" in rows(picker))
        made = teams_of(d)["duo"]
        assert made.kind == "chain" and list(made.members) == ["writer", "critic"] and made.max_turns == 3
        assert made.timeout_seconds == 120 and made.stop_text == "DONE" and dict(made.instructions) == {"critic": "Shorten this:"}
        assert made.guard.agent == "screener" and made.guard.output == "after" and made.guard.input and made.guard.on_block == "stop"
        assert rows(picker)[picker.query_one(DataTable).cursor_row] == "duo", "the cursor is on the team just saved"

        await pilot.press("e")
        await wait_until(pilot, lambda: isinstance(app.screen, TeamEditor))
        editor = app.screen
        assert isinstance(editor, TeamEditor)
        assert editor.query_one("#name", Input).disabled, "a team's name is its identity"
        assert editor.query_one("#timeout", Input).value == "120s" and editor.query_one("#max_turns", Input).value == "3"
        assert editor.query_one("#instructions", TextArea).text == "critic: Shorten this:"
        editor.query_one("#kind", Select).value = "director"
        await pilot.pause()
        assert editor.query_one("#director-row").display
        editor.query_one("#director", Select).value = "writer"
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: "also a member" in error_of(editor))
        editor.query_one("#director", Select).value = "boss"
        editor.query_one("#guard_input", Checkbox).value = False
        editor.query_one("#guard", Select).clear()
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: app.screen is picker)
        changed = teams_of(d)["duo"]
        assert changed.kind == "director" and changed.director == "boss" and not changed.HasField("guard")
        assert changed.stop_text == "DONE", "what the form did not change stays"

        await pilot.press("e")
        await wait_until(pilot, lambda: isinstance(app.screen, TeamEditor))
        await pilot.press("ctrl+d")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_until(pilot, lambda: app.screen is picker and "duo" not in rows(picker))
        assert "duo" not in teams_of(d)


async def test_d_in_the_picker_deletes_after_asking(d: Daemon) -> None:
    d.stubs().teams.PutTeam(teams_pb2.PutTeamRequest(team=teams_pb2.Team(name="spare", kind="chain", members=["writer"])), timeout=10)
    app = EnclaveApp(d.socket, spawn=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_until(pilot, lambda: app.workbench.attached)
        await pilot.press("alt+t")
        await wait_until(pilot, lambda: isinstance(app.screen, TeamPicker) and "spare" in rows(app.screen))
        picker = app.screen
        assert isinstance(picker, TeamPicker)
        for _ in range(rows(picker).index("spare")):
            await pilot.press("down")
        await pilot.press("d")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")
        await wait_until(pilot, lambda: app.screen is picker)
        assert "spare" in teams_of(d)
        await pilot.press("d")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_until(pilot, lambda: "spare" not in rows(picker))
        assert "spare" not in teams_of(d)
