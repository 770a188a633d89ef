"""The audit screen driven with Pilot against the scripted daemon's Audit service.

The scripted daemon (tests/tui/scripted_daemon.py) serves a fixed list of records and counts the
rows it hands out, so these tests can prove that the screen reads only the pages it shows; one
test browses a real daemon's log, to see that reading it is itself recorded.
The last two tests are pixel-exact pictures; accept an intended change with
``pytest tests/tui/test_audit_screen.py --snapshot-update`` and look at the SVGs in __snapshots__.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pytest_textual_snapshot import SVGImageExtension
from syrupy import SnapshotAssertion
from textual.pilot import Pilot
from textual.widgets import Input, Static

from enclave.app import EnclaveApp
from enclave.screens.audit import AuditScreen
from enclave.screens.audit.badge import VerifyBadge
from enclave.screens.audit.record import AuditRecordScreen
from enclave.screens.audit.records import PAGE_SIZE, AuditList
from enclave_contract.v1 import agents_pb2, audit_pb2
from tests.helpers import SHARED_CONFIG, Daemon, enclave, wait_until
from tests.tui.scripted_daemon import ScriptedDaemon, audit_matches

pytestmark = pytest.mark.timeout(60)

AGENTS = [agents_pb2.Agent(name="narrator", model="demo"), agents_pb2.Agent(name="coder", model="coder-1b")]
START = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
VERIFIED = audit_pb2.AuditVerifyResponse(
    ok=True, summary="ok: 10000 records, seq 1-10000; last checkpoint at seq 9990", records=10_000, last_seq=10_000, checkpoint_seq=9_990
)
TAMPERED = audit_pb2.AuditVerifyResponse(
    ok=False,
    summary="FAILED at seq 4242: seal is invalid: the record was altered, or re-sealed with a later key",
    records=4_241,
    last_seq=10_000,
    checkpoint_seq=9_990,
    bad_seq=4_242,
)


def record(seq: int) -> audit_pb2.AuditRecord:
    """Record ``seq`` of a made-up but plausible log: the same every run."""
    user, pid = [("alice", 4101), ("bob", 5230), ("alice", 4188)][seq % 3]
    action = ["chat.request", "chat.completion", "agent.update", "model.load", "chat.request", "chat.cancel"][seq % 6]
    agent, model = [("narrator", "demo"), ("coder", "coder-1b")][seq % 2]
    if action == "model.load":
        agent = ""
    outcome = {"chat.cancel": "cancelled"}.get(action, "ok" if seq % 11 else ("error" if seq % 2 else "denied"))
    return audit_pb2.AuditRecord(
        seq=seq,
        time=(START + timedelta(seconds=7 * seq)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        actor=audit_pb2.AuditActor(user=user, uid=1000 + seq % 3 % 2, pid=pid, auth="peercred"),
        action=action,
        agent=agent,
        model=model,
        turn=f"{seq * 2654435761 % 16**12:012x}" if action.startswith("chat.") else "",
        outcome=outcome,
        payload_json=json.dumps({"usage": {"prompt_tokens": 20 + seq % 50, "completion_tokens": seq % 300}, "detach": True}),
        hash=f"{seq * 40503:064x}",
    )


LOG = [record(seq) for seq in range(1, 10_001)]


@asynccontextmanager
async def scripted(
    records: Sequence[audit_pb2.AuditRecord] = LOG, verify: audit_pb2.AuditVerifyResponse | None = VERIFIED
) -> AsyncIterator[ScriptedDaemon]:
    folder = Path(tempfile.mkdtemp(prefix="aud-", dir="/tmp"))
    daemon = ScriptedDaemon(folder / "s.sock", agents=AGENTS, audit_records=records, audit_verify=verify)
    await daemon.start()
    try:
        yield daemon
    finally:
        await daemon.stop()
        shutil.rmtree(folder, ignore_errors=True)


def on_screen(records: AuditList) -> range:
    """The indexes of the records the list shows now."""
    top = records.scroll_offset.y
    return range(top, min(top + records.scrollable_content_region.height - 1, records.count))


def settled(app: EnclaveApp) -> bool:
    """The audit screen is up, live, with every row on screen read and the badge decided."""
    if not isinstance(app.screen, AuditScreen):
        return False
    records = app.screen.query_one(AuditList)
    badge = app.screen.query_one(VerifyBadge)
    return (
        records.live and all(records.record(i) is not None for i in on_screen(records)) and not str(badge.render()).startswith("verifying")
    )


async def open_audit(pilot: Pilot, app: EnclaveApp) -> AuditList:
    await wait_until(pilot, lambda: app.workbench.attached)
    await pilot.press("alt+u")
    await wait_until(pilot, lambda: settled(app))
    return app.screen.query_one(AuditList)


def line(records: AuditList, index: int) -> str:
    """The text of record ``index``'s line as drawn (it must be on screen)."""
    assert index in on_screen(records)
    return "".join(segment.text for segment in records.render_line(index - records.scroll_offset.y + 1))


def badge_of(app: EnclaveApp) -> VerifyBadge:
    return app.screen.query_one(VerifyBadge)


async def test_opening_reads_only_the_page_on_screen_and_shows_the_newest() -> None:
    async with scripted() as daemon:
        app = EnclaveApp(daemon.socket, spawn=False)
        async with app.run_test(size=(80, 24)) as pilot:
            records = await open_audit(pilot, app)
            assert records.count == 10_000 and records.cursor == 9_999 and records.following
            assert daemon.audit_pages == [(9_900, PAGE_SIZE)] and daemon.audit_rows_served == PAGE_SIZE
            assert line(records, 9_999).split()[:4] == ["10000", "11-23", "03:26:40", "bob/5230"]
            assert records.border_title == "audit log · 10,000 records" and records.border_subtitle == "following"


async def test_keys_move_the_cursor_and_read_the_pages_they_reach() -> None:
    async with scripted() as daemon:
        app = EnclaveApp(daemon.socket, spawn=False)
        async with app.run_test(size=(80, 24)) as pilot:
            records = await open_audit(pilot, app)
            shown = len(on_screen(records))
            await pilot.press("home")
            await wait_until(pilot, lambda: settled(app))
            assert records.cursor == 0 and records.scroll_offset.y == 0
            assert daemon.audit_pages == [(9_900, PAGE_SIZE), (0, PAGE_SIZE)]
            assert line(records, 0).split()[0] == "1"
            await pilot.click(AuditList, offset=(10, 4))  # border, header, records 0, 1, 2
            assert records.cursor == 2

            pages = -(-PAGE_SIZE // shown)  # page downs to reach the second page
            await pilot.press(*["pagedown"] * pages, "down")
            await wait_until(pilot, lambda: settled(app))
            assert records.cursor == 2 + pages * shown + 1 and records.cursor in on_screen(records)
            assert daemon.audit_pages[2:] == [(PAGE_SIZE, PAGE_SIZE)]
            await pilot.press("pageup", "up")
            assert records.cursor == 2 + (pages - 1) * shown and records.border_subtitle == f"{records.cursor + 1:,} of 10,000"

            await pilot.press("end")
            await wait_until(pilot, lambda: settled(app))
            assert records.cursor == 9_999 and records.following
            assert len(daemon.audit_pages) == 3, "the last page is still in memory"
            assert daemon.audit_rows_served == 3 * PAGE_SIZE, "10,000 records, 300 read"


async def test_filters_narrow_the_count_and_read_again() -> None:
    async with scripted() as daemon:
        app = EnclaveApp(daemon.socket, spawn=False)
        async with app.run_test(size=(160, 48)) as pilot:
            records = await open_audit(pilot, app)
            await pilot.press("slash", *"alice")
            assert app.screen.query_one("#audit-actor", Input).value == "alice"
            app.screen.query_one("#audit-action", Input).value = "chat.*"
            await pilot.press("enter")
            query = audit_pb2.AuditQuery(actor="alice", action="chat.*")
            expected = [r for r in LOG if audit_matches(query, r)]
            await wait_until(pilot, lambda: records.count == len(expected) and settled(app))
            assert 0 < records.count < 10_000 and records.has_focus
            assert records.border_title == f"audit log · {len(expected):,} matching records"
            assert [records.record(i).seq for i in on_screen(records)] == [r.seq for r in expected[-len(on_screen(records)) :]]
            assert daemon.audit_pages[-1] == (len(expected) // PAGE_SIZE * PAGE_SIZE, PAGE_SIZE)

            app.screen.query_one("#audit-outcome", Input).value = "denied"
            app.screen.query_one("#audit-actor", Input).focus()
            await pilot.press("enter")
            denied = [r for r in expected if r.outcome == "denied"]
            await wait_until(pilot, lambda: records.count == len(denied) and settled(app))
            assert all(line(records, i).rstrip().endswith("denied") for i in on_screen(records))


async def test_live_records_are_followed_at_the_bottom_and_not_when_scrolled_up() -> None:
    async with scripted(list(LOG)) as daemon:
        app = EnclaveApp(daemon.socket, spawn=False)
        async with app.run_test(size=(80, 24)) as pilot:
            records = await open_audit(pilot, app)
            read = len(daemon.audit_pages)
            daemon.append_audit(record(10_001))
            await wait_until(pilot, lambda: records.count == 10_001)
            assert records.cursor == 10_000 and records.following and records.scroll_offset.y == records.max_scroll_y
            assert line(records, 10_000).split()[0] == "10001"
            assert len(daemon.audit_pages) == read, "a followed record comes from the stream, not another page"

            await pilot.press("home")
            await wait_until(pilot, lambda: settled(app))
            daemon.append_audit(record(10_002))
            await wait_until(pilot, lambda: records.count == 10_002)
            assert records.cursor == 0 and records.scroll_offset.y == 0, "scrolled up: it stays put"
            await pilot.press("end")
            await wait_until(pilot, lambda: settled(app))
            assert line(records, 10_001).split()[0] == "10002"

            await pilot.press("slash", *"alice", "enter")
            await wait_until(pilot, lambda: records.audit_query.actor == "alice" and settled(app))
            before = records.count
            daemon.append_audit(
                audit_pb2.AuditRecord(seq=10_003, action="client.connect", actor=audit_pb2.AuditActor(user="root"), outcome="ok")
            )
            daemon.append_audit(record(10_004))  # alice's
            await wait_until(pilot, lambda: records.count == before + 1)
            assert records.record(records.count - 1).seq == 10_004, "Follow brings only what the filters let through"


async def test_an_empty_log_fills_as_records_are_written() -> None:
    async with scripted([]) as daemon:
        app = EnclaveApp(daemon.socket, spawn=False)
        async with app.run_test(size=(80, 24)) as pilot:
            records = await open_audit(pilot, app)
            assert records.count == 0 and records.border_title == "audit log · 0 records" and records.border_subtitle == "live"
            await pilot.press("enter", "up", "pagedown", "home", "end")
            assert isinstance(app.screen, AuditScreen)
            for seq in (1, 2):
                daemon.append_audit(record(seq))
            await wait_until(pilot, lambda: records.count == 2)
            assert records.cursor == 1 and records.following and daemon.audit_pages == []
            assert [line(records, i).split()[0] for i in (0, 1)] == ["1", "2"]


@pytest.mark.parametrize(
    ("verify", "state", "text"),
    [
        (VERIFIED, "-ok", "✓ verified · 10,000 records · checkpoint #9990"),
        (TAMPERED, "-failed", "✗ verification failed at #4242: seal is invalid: the record was altered, or re-sealed with a later key"),
        (None, "-unknown", "verification unavailable: this daemon keeps no audit log [UNIMPLEMENTED]"),
    ],
    ids=["verified", "tampered", "unimplemented"],
)
async def test_the_badge_says_whether_the_log_verifies(verify: audit_pb2.AuditVerifyResponse | None, state: str, text: str) -> None:
    async with scripted(verify=verify) as daemon:
        app = EnclaveApp(daemon.socket, spawn=False)
        async with app.run_test(size=(160, 48)) as pilot:
            await open_audit(pilot, app)
            badge = badge_of(app)
            assert str(badge.render()) == text and badge.has_class(state)
            assert daemon.audit_verifies == 1
            await pilot.press("v")
            await wait_until(pilot, lambda: daemon.audit_verifies == 2 and str(badge.render()) == text)


async def test_enter_shows_the_payload_and_esc_goes_back_to_the_panes() -> None:
    async with scripted() as daemon:
        app = EnclaveApp(daemon.socket, spawn=False)
        async with app.run_test(size=(80, 24)) as pilot:
            records = await open_audit(pilot, app)
            await pilot.press("up", "enter")
            await wait_until(pilot, lambda: isinstance(app.screen, AuditRecordScreen))
            payload = str(app.screen.query_one("#audit-payload", Static).render())
            assert payload == json.dumps(json.loads(LOG[9_998].payload_json), indent=2)
            r = LOG[9_998]
            assert f"#9999 · {r.time} · {r.action} · {r.outcome}" in str(app.screen.query_one(".question", Static).render())
            await pilot.press("escape")
            await wait_until(pilot, lambda: isinstance(app.screen, AuditScreen))
            assert daemon.audit_follows == 1
            await pilot.press("escape")
            await wait_until(pilot, lambda: app.screen is app.workbench and daemon.audit_follows == 0)
            assert app.workbench.query_one("#prompt", Input).has_focus and records.live is False
            assert not any(n.severity == "error" for n in app._notifications)


async def test_the_palette_opens_it() -> None:
    async with scripted() as daemon:
        app = EnclaveApp(daemon.socket, spawn=False)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_until(pilot, lambda: app.workbench.attached)
            commands = {c.title: c for c in app.get_system_commands(app.screen)}
            assert commands["Audit log"].help == "alt+u · audit.open"
            await pilot.press("ctrl+p", *"audit log", "enter")
            await wait_until(pilot, lambda: settled(app))


async def test_daemon_text_cannot_drive_the_terminal() -> None:
    hostile = audit_pb2.AuditRecord(
        seq=1,
        time="2026-11-22T08:00:00.000000Z",
        actor=audit_pb2.AuditActor(user="eve\x1b[2J", pid=-1),
        action="agent.create",
        agent="x\x07\ny",
        outcome="ok",
        payload_json="not JSON \x1b]52;c;ZXZpbA==\x07",
    )
    async with scripted([hostile]) as daemon:
        app = EnclaveApp(daemon.socket, spawn=False)
        async with app.run_test(size=(80, 24)) as pilot:
            records = await open_audit(pilot, app)
            text = line(records, 0)
            assert "\x1b" not in text and "\x07" not in text and "eve\ufffd[2J" in text and "x\ufffd y" in text
            await pilot.press("enter")
            await wait_until(pilot, lambda: isinstance(app.screen, AuditRecordScreen))
            payload = str(app.screen.query_one("#audit-payload", Static).render())
            assert payload == "not JSON \ufffd]52;c;ZXZpbA==\ufffd"  # JSON itself escapes control characters


async def test_a_lost_daemon_is_one_line_not_a_traceback() -> None:
    async with scripted() as daemon:
        app = EnclaveApp(daemon.socket, spawn=False)
        async with app.run_test(size=(80, 24)) as pilot:
            records = await open_audit(pilot, app)
            await daemon.stop()
            await wait_until(pilot, lambda: not records.live)
            await pilot.press("r", "v")
            badge = badge_of(app)
            await wait_until(pilot, lambda: str(badge.render()).startswith("verification unavailable: ") and badge.has_class("-unknown"))
            await wait_until(pilot, lambda: any(n.message.startswith("audit log: ") for n in app._notifications))
            for notice in app._notifications:
                assert "\n" not in notice.message and "Traceback" not in notice.message
            assert app.is_running and isinstance(app.screen, AuditScreen)


# ---- against the real daemon -----------------------------------------------------------------


def reads_recorded(daemon: Daemon, pid: int) -> list[str]:
    """How the ``audit.read`` records of the client with ``pid`` say it read the log."""
    r = enclave(daemon, "audit", "export", "--format", "jsonl", "--action", "audit.read")
    assert r.returncode == 0, r.stderr
    return sorted(rec["payload"]["via"] for rec in map(json.loads, r.stdout.splitlines()) if rec["actor"]["pid"] == pid)


async def test_browsing_the_real_log_is_itself_recorded(daemon_factory: Callable[..., Daemon]) -> None:
    daemon = daemon_factory(SHARED_CONFIG)
    app = EnclaveApp(daemon.socket, spawn=False)
    async with app.run_test(size=(120, 40)) as pilot:
        records = await open_audit(pilot, app)  # its rows read, its Follow stream started
        assert records.count > 0 and records.record(records.count - 1) is not None
        reads: list[str] = []
        for _ in range(100):  # Follow is recorded as the daemon starts it; Rows before it answers
            reads = await asyncio.to_thread(reads_recorded, daemon, os.getpid())
            if reads == ["follow", "rows"]:
                break
            await pilot.pause(0.1)
        assert reads == ["follow", "rows"], "one record for each way the screen reads the log"
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is app.workbench)


# ---- pictures ------------------------------------------------------------------------------

PICTURED = [record(seq) for seq in range(9_941, 10_001)]  # as if older records were pruned
PICTURED_VERIFIED = audit_pb2.AuditVerifyResponse(
    ok=True, summary="ok: 60 records, seq 9941-10000; last checkpoint at seq 9990", records=60, last_seq=10_000, checkpoint_seq=9_990
)


@pytest.fixture
def svg(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.use_extension(SVGImageExtension)


@pytest.mark.parametrize("size", [(160, 48), (80, 24)], ids=["160x48", "80x24"])
async def test_audit_screen_picture(svg: SnapshotAssertion, size: tuple[int, int]) -> None:
    async with scripted(PICTURED, PICTURED_VERIFIED) as daemon:
        app = EnclaveApp(daemon.socket, spawn=False)
        async with app.run_test(size=size) as pilot:
            await open_audit(pilot, app)
            await pilot.press("up", "up")
            await pilot.pause(0.3)
            assert svg == app.export_screenshot()
