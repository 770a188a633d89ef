"""The audit screen's filters: actor, agent, action and outcome; Enter in any applies them all."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Input

from enclave.views import AuditQuery
from enclave.widgets.prompt import PromptInput

FIELDS = {  # AuditQuery field: placeholder
    "actor": "actor (user)",
    "agent": "agent",
    "action": "action (chat.*)",
    "outcome": "outcome (ok, error, …)",
}


class AuditFilters(Horizontal):
    class Applied(Message):
        def __init__(self, query: AuditQuery) -> None:
            super().__init__()
            self.query = query

    def compose(self) -> ComposeResult:
        for field, placeholder in FIELDS.items():
            yield PromptInput(placeholder=placeholder, id=f"audit-{field}", compact=True)

    @property
    def audit_query(self) -> AuditQuery:
        return AuditQuery(**{f: self.query_one(f"#audit-{f}", Input).value.strip() for f in FIELDS})

    @on(Input.Submitted)
    def _apply(self, event: Input.Submitted) -> None:
        event.stop()
        self.post_message(self.Applied(self.audit_query))
