"""The audit log: every record the daemon kept, paged as it is shown, filtered, followed live,
under a badge that says whether the log verifies.

The screen's parts sit here together: the badge (``badge``), the filters (``filters``), the
virtual list (``records``), one record in full (``record``) and their stylesheet.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Protocol

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Input, Static

from enclave.errors import DaemonError
from enclave.screens.audit.badge import VerifyBadge
from enclave.screens.audit.filters import AuditFilters
from enclave.screens.audit.record import AuditRecordScreen
from enclave.screens.audit.records import AuditList
from enclave.views import AuditQuery, AuditRecord, VerifyResult

KEYS = "end: follow · enter: payload · /: filter · v: verify · r: reload · esc: back"


class AuditSource(Protocol):
    """What the screen reads the log through (the workbench's DaemonClient)."""

    async def audit_count(self, query: AuditQuery) -> int: ...

    async def audit_rows(self, query: AuditQuery, offset: int, limit: int) -> list[AuditRecord]: ...

    def audit_follow(self, query: AuditQuery, last: int = 0) -> AsyncIterator[AuditRecord]: ...

    async def audit_verify(self) -> VerifyResult: ...


class AuditScreen(Screen[None]):
    CSS_PATH = "audit.tcss"
    BINDINGS = [
        Binding("escape", "dismiss", "Back to the panes", show=False, id="audit.back"),
        Binding("v", "verify", "Verify the audit log", show=False, id="audit.verify"),
        Binding("slash", "filter", "Filter", show=False, id="audit.filter"),
        Binding("r", "reload", "Reload", show=False, id="audit.reload"),
    ]

    def __init__(self, client: AuditSource) -> None:
        super().__init__()
        self.client = client
        self.audit_query = AuditQuery()  # the filters applied

    def compose(self) -> ComposeResult:
        yield VerifyBadge(id="audit-badge")
        yield AuditFilters(id="audit-filters")
        yield AuditList(self.client.audit_rows, id="audit-list")
        yield Static(KEYS, id="audit-keys", markup=False)

    @property
    def records(self) -> AuditList:
        return self.query_one(AuditList)

    def on_mount(self) -> None:
        self.records.focus()
        self.load(self.audit_query)
        self.action_verify()

    # ---- records ---------------------------------------------------------------------------

    @work(exclusive=True, group="audit-follow")
    async def load(self, query: AuditQuery) -> None:
        """Count what matches and show it from the newest, then follow new records.

        Follow is asked for before the count, as the workbench subscribes Watch before it
        reads transcripts, so that a record written in between is followed, not lost; one
        both counted and followed is recognised by its seq (``AuditList.add_live``).
        """
        records = self.records
        stream = self.client.audit_follow(query, last=0)
        first = asyncio.ensure_future(anext(stream))
        try:
            await asyncio.sleep(0)  # the Follow call starts before the Count call
            records.reset(query, await self.client.audit_count(query))
            records.live = True
            record = await first
            while True:
                if not records.add_live(record):
                    self.recount(query)
                record = await anext(stream)
        except StopAsyncIteration:
            self.notify("the daemon ended the audit log's live tail; r reloads", severity="warning")
        except DaemonError as exc:
            self.notify(f"audit log: {exc}", severity="error")
        finally:
            first.cancel()
            records.live = False

    @work(exclusive=True, group="audit-recount")
    async def recount(self, query: AuditQuery) -> None:
        try:
            count = await self.client.audit_count(query)
        except DaemonError as exc:
            self.notify(f"audit log: {exc}", severity="error")
            return
        if query == self.records.audit_query:
            self.records.recounted(count)

    @on(AuditFilters.Applied)
    def apply_filters(self, event: AuditFilters.Applied) -> None:
        self.audit_query = event.query
        self.load(self.audit_query)
        self.records.focus()

    @on(AuditList.Opened)
    def open_record(self, event: AuditList.Opened) -> None:
        self.app.push_screen(AuditRecordScreen(event.record))

    @on(AuditList.Failed)
    def page_failed(self, event: AuditList.Failed) -> None:
        self.notify(f"audit log: {event.problem}", severity="error")

    def action_reload(self) -> None:
        self.load(self.audit_query)

    def action_filter(self) -> None:
        self.query_one("#audit-actor", Input).focus()

    # ---- verification ----------------------------------------------------------------------

    @work(exclusive=True, group="audit-verify")
    async def action_verify(self) -> None:
        badge = self.query_one(VerifyBadge)
        badge.checking()
        try:
            badge.show(await self.client.audit_verify())
        except DaemonError as exc:
            badge.unavailable(str(exc))
