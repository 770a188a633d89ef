"""The enclave app: settings, the keymap, global keys and the screens; the workbench does the rest.

Shaped like posting and Toad: the app holds what every screen shares (the settings, the
connection, the keymap) and pushes the workbench screen (``screens.workbench``), which shows
what the session (``enclave.session``) follows; the audit log is a screen of its own.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable
from functools import partial
from pathlib import Path

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.dom import DOMNode
from textual.screen import Screen

from enclave.keymap import GLOBAL_SCOPE
from enclave.protocol import DaemonClient
from enclave.screens.agent_editor import AgentEditor
from enclave.screens.audit import AuditScreen
from enclave.screens.team_editor import TeamEditor
from enclave.screens.team_picker import TeamPicker
from enclave.screens.workbench import WorkbenchScreen
from enclave.session import Session
from enclave.settings import Settings
from enclave.strips import light_strips
from enclave.terminal import read_alt_digits
from enclave.widgets.model_panel import ModelPanel


class EnclaveApp(App[None]):
    TITLE = "enclave"
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", id="app.quit", priority=True),  # in dialogs and fields too
    ]

    def __init__(
        self,
        socket_path: Path,
        settings: Settings | None = None,
        *,
        first_message: str | None = None,
        spawn: bool | None = None,
    ) -> None:
        super().__init__()
        read_alt_digits()
        light_strips()
        self.settings = settings or Settings()
        self.client = DaemonClient(socket_path)
        spawn = self.settings.spawn if spawn is None else spawn
        self.session = Session(self.client, spawn=spawn, daemon_args=self.settings.daemon_args)
        self.workbench = WorkbenchScreen(self.session, stream_hz=self.settings.stream_hz, first_message=first_message)
        self.set_keymap(self.settings.keys)

    @classmethod
    def binding_ids(cls) -> dict[str, tuple[str, str]]:
        """Every id a settings file may bind keys to (the app's, the workbench's, the models
        panel's, the agent and team editors', the team picker's and the audit screen's), with where it answers (a key may
        be bound once there; the app's keys answer everywhere) and its default keys."""
        holders: dict[str, type[DOMNode]] = {
            GLOBAL_SCOPE: cls,
            "workbench": WorkbenchScreen,
            "models panel": ModelPanel,
            "agent editor": AgentEditor,
            "team editor": TeamEditor,
            "team picker": TeamPicker,
            "audit": AuditScreen,
        }
        ids: dict[str, tuple[str, str]] = {}
        for scope, holder in holders.items():
            for b in holder.BINDINGS:
                if isinstance(b, Binding) and b.id:
                    ids.setdefault(b.id, (scope, b.key))
        return ids

    def on_mount(self) -> None:
        # A full collection pass scans every live object, mid-frame (a key press waits for
        # it). Objects alive now (modules, the app, gRPC) live as long as the app: they leave
        # the collector's view. (Rarer full passes were tried: each then took long enough to
        # stall keys for a second at 2,000 tok/s.)
        gc.freeze()
        self.push_screen(self.workbench)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The palette lists every workbench action with its keys (pane N only for panes that
        exist), whichever screen it is opened from."""
        for command in super().get_system_commands(screen):
            if screen is self.workbench and command.title in ("Maximize", "Minimize"):
                continue  # the workbench's own Zoom shows a pane whole, with its header
            yield command
        keymap = self._keymap
        for binding in WorkbenchScreen.BINDINGS:
            assert isinstance(binding, Binding) and binding.id
            if binding.id == "app.quit":
                continue  # Textual's own palette entry quits
            number = binding.id.removeprefix("pane.")
            if number.isdigit() and int(number) > len(self.workbench.panes):
                continue
            keys = keymap.get(binding.id, binding.key)
            yield SystemCommand(binding.description, f"{keys} · {binding.id}", partial(self.workbench.run_action, binding.action))

    def action_audit(self) -> None:
        """The audit log, in place of the panes; Esc comes back to them."""
        if not any(isinstance(screen, AuditScreen) for screen in self.screen_stack):
            self.push_screen(AuditScreen(self.client))

    async def on_unmount(self) -> None:
        await self.client.close()
