"""One audit record in full: its header and its decrypted payload, pretty-printed."""

from __future__ import annotations

import json

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from enclave.text import safe_text
from enclave.views import AuditRecord


def pretty_payload(payload_json: str) -> str:
    """The payload indented; as sent when it is not JSON."""
    if not payload_json:
        return "(no payload)"
    try:
        return json.dumps(json.loads(payload_json), indent=2, ensure_ascii=False)
    except ValueError:
        return payload_json


def record_header(r: AuditRecord) -> str:
    a = r.actor
    ids = ", ".join(f"{name} {value}" for name, value in (("uid", a.uid), ("pid", a.pid)) if value >= 0)
    lines = [
        f"#{r.seq} · {r.time} · {r.action} · {r.outcome}",
        f"actor: {a.user or '?'}" + (f" ({ids})" if ids else "") + (f" via {a.auth}" if a.auth else ""),
        " · ".join(f"{name}: {value}" for name, value in (("agent", r.agent), ("model", r.model), ("turn", r.turn)) if value),
        f"hash: {r.hash}",
    ]
    return "\n".join(line for line in lines if line)


class AuditRecordScreen(ModalScreen[None]):
    CSS_PATH = "../dialog.tcss"
    BINDINGS = [Binding("escape,enter,q", "dismiss", "Close", show=False)]

    def __init__(self, record: AuditRecord) -> None:
        super().__init__(classes="dialog-screen")
        self.record = record

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog audit-record"):
            yield Static(safe_text(record_header(self.record)), classes="question", markup=False)
            yield Static(safe_text(pretty_payload(self.record.payload_json)), id="audit-payload", markup=False)

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).focus()  # arrows and page keys scroll a long payload
