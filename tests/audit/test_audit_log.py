"""The audit log as the daemon uses it: appends, reading, content policy, conversations, keys."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from enclaved.audit import (
    Actor,
    AuditConfig,
    AuditError,
    AuditKeyError,
    AuditLog,
    Entry,
    Filters,
    change_passphrase,
    copy_log,
    export,
    verify,
)
from enclaved.errors import FailedPrecondition, InvalidArgument
from tests.helpers import ACTOR, FAST, MARKER, Clock, files_in, fill


async def test_concurrent_appends_get_gap_free_seqs_and_read_back(tmp_path: Path) -> None:
    async with await AuditLog.open(tmp_path, config=FAST) as log:
        seqs = await asyncio.gather(*(fill(log, 25, start=100 * w) for w in range(8)))
        flat = sorted(s for chunk in seqs for s in chunk)
        assert flat == list(range(1, 201))
        assert log.last_seq == 200
        assert await log.count() == 200
        assert await log.count(Filters(agent="agent1")) == sum(1 for w in range(8) for i in range(100 * w, 100 * w + 25) if i % 3 == 1)
        assert await log.count(Filters(action="chat.*")) == 200
        assert await log.count(Filters(action="chat.request")) == 0
        assert await log.count(Filters(actor="ann", outcome="ok")) == 200

        page = await log.rows(Filters(), offset=10, limit=5)
        assert [r.seq for r in page] == [11, 12, 13, 14, 15]
        newest = await log.rows(Filters(), 0, 3, newest_first=True)
        assert [r.seq for r in newest] == [200, 199, 198]
        record = page[0].to_dict()
        assert record["action"] == "chat.completion"
        assert record["actor"] == {"user": "ann", "uid": 1000, "pid": 4242, "auth": "peercred"}
        assert record["payload"]["usage"]["completion_tokens"] >= 0
        assert record["payload"]["text"]["prompt"].startswith("question ")

        times = [r.time for r in await log.rows(Filters(), 0, 200)]
        assert times == sorted(times)
        middle = page[2]
        since = datetime.fromisoformat(middle.time.replace("Z", "+00:00"))
        assert await log.count(Filters(since=since)) == 200 - middle.seq + 1
        assert await log.count(Filters(until=since)) == middle.seq - 1


@pytest.mark.parametrize("policy", ["full", "digest", "none"])
async def test_content_policy_decides_what_text_is_kept(tmp_path: Path, policy: str) -> None:
    async with await AuditLog.open(tmp_path, config=AuditConfig(content_policy=policy)) as log:  # type: ignore[arg-type]
        seq = await log.append(Entry("chat.request", agent="a", text={"prompt": MARKER}, payload={"tokens": 3}), ACTOR)
        payload = (await log.rows(Filters(), seq - 1, 1))[0].payload
        digest = log.digest(MARKER)
    assert payload["tokens"] == 3
    if policy == "full":
        assert payload["text"] == {"prompt": MARKER}
    elif policy == "digest":
        assert payload["text_hmac"] == {"prompt": {"key_id": 1, "hmac": digest}}
        assert MARKER not in json.dumps(payload)
    else:
        assert payload["text_omitted"] == ["prompt"]
        assert MARKER not in json.dumps(payload)


async def test_bad_entries_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    async with await AuditLog.open(tmp_path) as log:
        with pytest.raises(InvalidArgument, match="unknown audit action"):
            await log.append(Entry("chat.bogus"), ACTOR)  # type: ignore[arg-type]  # refused at run time too
        with pytest.raises(InvalidArgument, match="outcome"):
            await log.append(Entry("chat.error", outcome="meh"), ACTOR)
        with pytest.raises(InvalidArgument, match="auth method"):
            await log.append(Entry("chat.error"), Actor(""))
        with pytest.raises(InvalidArgument, match="reserved"):
            await log.append(Entry("chat.error", payload={"text": "x"}), ACTOR)
        with pytest.raises(InvalidArgument, match="plain JSON"):
            await log.append(Entry("chat.error", payload={"x": object()}), ACTOR)
        assert log.last_seq == 0
        assert await log.append(Entry("access.denied", outcome="denied"), Actor("socket-owner")) == 1


async def test_follow_gives_recent_records_then_new_ones(tmp_path: Path) -> None:
    async with await AuditLog.open(tmp_path) as log:
        await fill(log, 5)
        seen: list[int] = []

        async def follower() -> None:
            async for record in log.follow(Filters(action="chat.*"), last=2):
                seen.append(record.seq)
                if len(seen) == 5:
                    return

        task = asyncio.create_task(follower())
        await asyncio.sleep(0.05)
        await log.append(Entry("model.load", model="tiny"), ACTOR)  # filtered out
        await fill(log, 3)
        await asyncio.wait_for(task, 5)
    assert seen == [4, 5, 7, 8, 9]


async def test_export_and_verify_are_themselves_recorded(tmp_path: Path) -> None:
    async with await AuditLog.open(tmp_path) as log:
        await fill(log, 3)
        exported = [r async for r in log.export(ACTOR, Filters(agent="agent0"))]
        result = await log.verify(ACTOR)
        tail = await log.rows(Filters(action="audit.*"), 0, 10)
    assert [r["seq"] for r in exported] == [1]
    assert result.ok, result.summary
    assert [(r.action, r.outcome) for r in tail] == [("audit.export", "ok"), ("audit.verify", "ok")]
    assert tail[0].payload["filters"]["agent"] == "agent0"
    assert [r["seq"] for r in export(tmp_path, filters=Filters(action="audit.verify"))] == [5]


async def test_conversations_survive_a_restart(tmp_path: Path) -> None:
    async with await AuditLog.open(tmp_path) as log:
        conv = log.conversations
        await conv.save_agent("alice", {"model": "tiny", "system": "be brief", "params": {"temperature": 0.2}})
        await conv.save_agent("bob", {"model": "small"})
        await conv.save_message("alice", 0, "user", "hello", "t1")
        await conv.save_message("alice", 1, "assistant", "hi there", "t1", "stop")
        await conv.save_message("bob", 0, "user", "ping", "t2")
        await conv.save_message("carol", 0, "user", "gone soon", "t3")
        await conv.save_agent("bob", {"model": "tiny"})  # replaced
        await conv.clear("bob")
        await conv.delete_agent("carol")
    async with await AuditLog.open(tmp_path) as log:
        transcripts = await log.conversations.load_transcripts()
        agents = await log.conversations.load_agents()
        await log.conversations.save_message("bob", 0, "user", "again", "t4")
        assert [m.content for m in (await log.conversations.load_transcripts())["bob"].messages] == ["again"]
    assert list(transcripts) == ["alice"]
    assert not transcripts["alice"].damage
    assert [(m.role, m.content, m.turn_id, m.finish_reason) for m in transcripts["alice"].messages] == [
        ("user", "hello", "t1", ""),
        ("assistant", "hi there", "t1", "stop"),
    ]
    assert agents == {"alice": {"model": "tiny", "system": "be brief", "params": {"temperature": 0.2}}, "bob": {"model": "tiny"}}


async def test_a_replys_trimmed_history_is_kept_and_rows_without_it_read_as_none_left_out(tmp_path: Path) -> None:
    """How many oldest messages a reply's prompt left out goes in the row's encrypted body, as
    ``context_tokens`` does: no column, so a database written before it loads unchanged, and a
    reply with nothing left out is stored exactly as before (an older daemon reads it too)."""
    from enclaved.audit.conversations import _message_aad
    from enclaved.audit.writer import Statement, Writer

    async with await AuditLog.open(tmp_path) as log:
        conv = log.conversations

        def old_row(position: int, doc: dict[str, object]) -> Callable[[Writer], tuple[list[Statement], None]]:
            """A message row as a daemon that did not keep ``dropped_messages`` wrote it."""

            def build(w: Writer) -> tuple[list[Statement], None]:
                message_id, key_id = w.next_message_id(), w.keyring.current
                body = json.dumps(doc).encode()
                nonce, ct = w.keyring.encrypt(key_id, body, _message_aad("alice", message_id, key_id, position))
                return [("INSERT INTO messages VALUES (?, ?, ?, ?, ?)", (message_id, "alice", key_id, nonce, ct))], None

            return build

        await log._writer.submit(old_row(0, {"role": "user", "content": "hello", "turn_id": "t1", "finish_reason": ""}))
        old_reply = {"role": "assistant", "content": "hi", "turn_id": "t1", "finish_reason": "max_tokens", "context_tokens": 90}
        await log._writer.submit(old_row(1, old_reply))
        await conv.save_message("alice", 2, "user", "more", "t2")
        await conv.save_message("alice", 3, "assistant", "sure", "t2", "end_of_turn", 120, dropped_messages=2)
        await conv.save_message("alice", 4, "user", "and", "t3")
        await conv.save_message("alice", 5, "assistant", "so", "t3", "end_of_turn", 130)
        bodies = await log._db.execute_fetchall("SELECT id, key_id, nonce, body FROM messages ORDER BY id")
        keyring = log._writer.keyring
        docs = [json.loads(keyring.decrypt(k, n, b, _message_aad("alice", i, k, p))) for p, (i, k, n, b) in enumerate(bodies)]
    assert docs[3] == {
        "role": "assistant",
        "content": "sure",
        "turn_id": "t2",
        "finish_reason": "end_of_turn",
        "context_tokens": 120,
        "dropped_messages": 2,
    }
    assert set(docs[5]) == set(old_reply), "a reply with nothing left out is stored as before"
    async with await AuditLog.open(tmp_path) as log:
        transcript = (await log.conversations.load_transcripts())["alice"]
    assert not transcript.damage, transcript.damage
    assert [(m.content, m.finish_reason, m.context_tokens, m.dropped_messages) for m in transcript.messages] == [
        ("hello", "", 0, 0),
        ("hi", "max_tokens", 90, 0),
        ("more", "", 0, 0),
        ("sure", "end_of_turn", 120, 2),
        ("and", "", 0, 0),
        ("so", "end_of_turn", 130, 0),
    ]


async def test_no_plaintext_in_any_file_before_or_after_the_wal_is_checkpointed(tmp_path: Path) -> None:
    needles = [MARKER.encode(), MARKER.encode("utf-16-le"), MARKER[::-1].encode()]
    log = await AuditLog.open(tmp_path)
    try:
        await log.append(Entry("chat.request", agent="a", text={"prompt": f"tell me {MARKER}"}, payload={"note": MARKER}), ACTOR)
        await log.append(Entry("chat.completion", agent="a", text={"completion": MARKER[::-1]}), ACTOR)
        await log.conversations.save_message("a", 0, "user", f"tell me {MARKER}", "t1")
        await log.conversations.save_agent("a", {"system": MARKER})
        await log.checkpoint()
        live = files_in(tmp_path)
        assert len(live["audit.db-wal"]) > 0  # the records are still only in the WAL
        assert {"audit.db", "audit.db-shm", "audit.key", "audit.seal", "audit.checkpoint", "audit.verify"} <= set(live)
    finally:
        await log.close()
    for files in (live, files_in(tmp_path)):
        for name, data in files.items():
            for needle in needles:
                assert needle not in data, f"plaintext in {name}"
    for name in files_in(tmp_path):
        if name != "audit.lock":
            assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600, name


async def test_a_failed_write_fails_closed_then_recovers_by_itself(tmp_path: Path) -> None:
    log = await AuditLog.open(tmp_path)
    states: list[AuditError | None] = []
    log.on_state = states.append
    await fill(log, 3)
    pages = (await log._db.execute_fetchall("PRAGMA page_count"))[0][0]
    await log._db.execute(f"PRAGMA max_page_count={pages}")  # the disk is now full
    big = {"blob": "x" * 200_000}
    results = await asyncio.gather(*(log.append(Entry("chat.request", payload=big), ACTOR) for _ in range(3)), return_exceptions=True)
    await log._db.execute("PRAGMA query_only=1")  # and not even a small record fits now
    assert all(isinstance(r, AuditError) for r in results)
    message = str(results[0])
    assert "\n" not in message and "full" in message and "refused until it can write again" in message
    with pytest.raises(AuditError, match="can write again"):
        await log.append(Entry("chat.request"), ACTOR)
    with pytest.raises(AuditError):
        await log.conversations.save_message("a", 0, "user", "x", "t")
    await asyncio.sleep(1)  # retries go on failing while the disk is full
    assert len(states) == 1 and log.last_seq == 3
    await log._db.execute("PRAGMA max_page_count=1073741823")  # space again
    await log._db.execute("PRAGMA query_only=0")
    for _ in range(100):
        if states[-1] is None:
            break
        await asyncio.sleep(0.1)
    assert states[-1] is None, "the log did not recover"
    assert await log.append(Entry("daemon.start"), ACTOR) == 5
    recovered = (await log.rows(Filters(action="audit.recovered")))[0]
    assert recovered.seq == 4 and recovered.payload["refused"] == 5 and "full" in recovered.payload["error"]
    await log.close()
    result = verify(tmp_path)
    assert result.ok and result.records == 5, result.summary


async def test_open_twice_and_use_after_close_are_refused(tmp_path: Path) -> None:
    log = await AuditLog.open(tmp_path)
    with pytest.raises(FailedPrecondition, match="another process"):
        await AuditLog.open(tmp_path)
    await log.close()
    with pytest.raises(FailedPrecondition, match="closed"):
        await log.append(Entry("daemon.stop"), ACTOR)


async def test_key_rotation_keeps_old_records_readable_and_verifiable(tmp_path: Path) -> None:
    async with await AuditLog.open(tmp_path) as log:
        await fill(log, 3)
        assert await log.rotate_key(ACTOR) == 2
        await fill(log, 3, start=3)
        await log.conversations.save_message("a", 0, "user", "after", "t")
        assert await log.rotate_key(ACTOR) == 3
    async with await AuditLog.open(tmp_path) as log:
        await fill(log, 1, start=6)
        records = await log.rows(Filters(), 0, 100)
        assert [m.content for m in (await log.conversations.load_transcripts())["a"].messages] == ["after"]
    rotations = [r for r in records if r.action == "audit.rotate"]
    assert [(r.key_id, r.payload["key_id"], r.payload["previous_key_id"]) for r in rotations] == [(2, 2, 1), (3, 3, 2)]
    questions = [r for r in records if r.action != "audit.rotate"]
    assert [r.key_id for r in questions] == [1, 1, 1, 2, 2, 2, 3]
    assert [r.payload["text"]["prompt"] for r in questions] == [f"question {i}" for i in range(7)]
    result = verify(tmp_path)
    assert result.ok and result.records == 9, result.summary


async def test_rotations_cut_off_by_their_callers_leave_the_log_whole(tmp_path: Path) -> None:
    """Callers cancelled within milliseconds (short gRPC deadlines): every rotation still
    completes, one at a time, and the log goes on taking writes."""
    async with await AuditLog.open(tmp_path, config=FAST) as log:
        for _ in range(4):
            calls = [asyncio.create_task(log.rotate_key(ACTOR)) for _ in range(6)]
            await asyncio.sleep(0.002)
            for call in calls:
                call.cancel()
            await asyncio.gather(*calls, return_exceptions=True)
        await fill(log, 3)
        await asyncio.sleep(0.3)  # the rotations still running finish
        assert await log.append(Entry("daemon.stop"), ACTOR) > 0
        assert not list(tmp_path.glob(".*.tmp"))
    result = verify(tmp_path)
    assert result.ok, result.summary


async def test_passphrase_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with await AuditLog.open(tmp_path, passphrase="correct horse", config=FAST) as log:
        await fill(log, 3)
        await log.rotate_key(ACTOR)  # the file is re-encrypted without asking again
        await fill(log, 1, start=3)
    doc = json.loads((tmp_path / "audit.key").read_text())
    assert doc["protection"] == "scrypt/aes-256-gcm" and "keyring" not in doc
    with pytest.raises(AuditKeyError, match="protected by a passphrase; set ENCLAVE_AUDIT_PASSPHRASE"):
        await AuditLog.open(tmp_path)
    with pytest.raises(AuditKeyError, match="wrong passphrase"):
        await AuditLog.open(tmp_path, passphrase="wrong horse")
    assert verify(tmp_path, passphrase="correct horse").ok
    async with await AuditLog.open(tmp_path, passphrase="correct horse") as log:
        assert [(r.action, r.key_id) for r in await log.rows()] == [
            *[("chat.completion", 1)] * 3,
            ("audit.rotate", 2),
            ("chat.completion", 2),
        ]

    change_passphrase(tmp_path / "audit.key", "correct horse", None)
    with pytest.raises(AuditKeyError, match="not protected by a passphrase"):
        await AuditLog.open(tmp_path, passphrase="correct horse")
    async with await AuditLog.open(tmp_path) as log:
        assert log.last_seq == 5


async def test_records_keep_time_order_when_the_clock_steps_back(tmp_path: Path) -> None:
    clock = Clock()
    async with await AuditLog.open(tmp_path, clock=clock) as log:
        await fill(log, 2)
        clock.now -= timedelta(hours=1)  # NTP stepped the clock back
        await fill(log, 2, start=2)
        times = [r.time for r in await log.rows()]
    assert times == sorted(times)
    assert verify(tmp_path).ok


async def test_verify_and_copy_a_live_log_while_it_is_written(tmp_path: Path) -> None:
    """The files outside the database are read before its snapshot, so a log being written
    verifies (the sealing state and checkpoint may lag it, never lead it)."""
    data = tmp_path / "data"
    config = AuditConfig(checkpoint_interval=0.01, seal_interval=0.0)
    async with await AuditLog.open(data, config=config) as log:
        stop = asyncio.Event()

        async def appender(w: int) -> None:
            i = 0
            while not stop.is_set():
                await fill(log, 1, start=1000 * w + i)
                i += 1

        tasks = [asyncio.create_task(appender(w)) for w in range(4)]
        await asyncio.sleep(0.1)
        results = [await asyncio.to_thread(verify, data) for _ in range(3)]
        await asyncio.to_thread(copy_log, data, tmp_path / "copy")
        stop.set()
        await asyncio.gather(*tasks)
    assert all(r.ok for r in results), [r.summary for r in results]
    assert results[-1].last_seq and results[-1].last_seq > results[0].records // 2
    copied = verify(tmp_path / "copy", verify_key=data / "audit.verify")
    assert copied.ok, copied.summary


async def test_a_missing_checkpoint_copy_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FailedPrecondition, match="not mounted"):
        await AuditLog.open(tmp_path / "data", config=AuditConfig(checkpoint_copies=(tmp_path / "nas" / "audit.checkpoint",)))
