"""Retention: pruning removes old records for good, and says so in a sealed record that
verification accounts for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from enclaved.audit import AuditConfig, AuditLog, Entry, Filters, verify
from tests.helpers import ACTOR, Clock, db, files_in, fill


async def test_pruning_old_records_leaves_a_marker_and_a_log_that_verifies(tmp_path: Path) -> None:
    clock = Clock(datetime(2015, 3, 1, tzinfo=UTC))
    config = AuditConfig(retention_days=6 * 365 + 2)
    async with await AuditLog.open(tmp_path, config=config, clock=clock) as log:
        await fill(log, 5)
        with db(tmp_path) as conn:
            old = [row[0] for row in conn.execute("SELECT payload FROM records WHERE seq <= 5")]
        clock.now = datetime(2019, 6, 1, tzinfo=UTC)
        await fill(log, 3, start=5)
        assert await log.prune(ACTOR) is None  # nothing is six years old yet

        clock.now = datetime(2021, 4, 1, tzinfo=UTC)
        await fill(log, 2, start=8)
        seq = await log.prune(ACTOR)
        assert seq == 11
        records = await log.rows(Filters(), 0, 100)
        await log.append(Entry("daemon.stop"), ACTOR)

    assert [r.seq for r in records] == [6, 7, 8, 9, 10, 11]
    marker = records[-1]
    assert (marker.action, marker.outcome, marker.actor) == ("audit.prune", "ok", ACTOR)
    assert marker.payload["from_seq"] == 1 and marker.payload["to_seq"] == 5 and marker.payload["removed"] == 5
    assert marker.payload["reason"] == "retention period"
    assert marker.payload["cutoff"].startswith("2015-04-01T")  # six years before 2021-04-01
    assert marker.payload["last_removed_time"].startswith("2015-03-01T00:00:00.00")
    assert len(marker.payload["last_removed_hash"]) == 64

    result = verify(tmp_path)
    assert result.ok, result.summary
    assert result.first_seq == 6 and result.last_seq == 12
    assert "pruned: seq 1-5 removed (audit.prune record 11)" in result.summary
    for name, data in files_in(tmp_path).items():
        for ciphertext in old:
            assert ciphertext not in data, f"pruned record still in {name}"


async def test_pruning_again_and_reopening_still_verifies(tmp_path: Path) -> None:
    clock = Clock()
    async with await AuditLog.open(tmp_path, clock=clock) as log:
        await fill(log, 4)
        clock.now += timedelta(days=10)
        await fill(log, 4, start=4)
        assert await log.prune(ACTOR, before=clock.now - timedelta(days=5), reason="test") == 9
        clock.now += timedelta(days=10)
        await fill(log, 2, start=8)
        assert await log.prune(ACTOR, before=clock.now - timedelta(days=5)) == 12
    async with await AuditLog.open(tmp_path, clock=clock) as log:
        assert [r.seq for r in await log.rows()] == [10, 11, 12]  # 5-8 and the first marker went
        await fill(log, 1)
    result = verify(tmp_path)
    assert result.ok and result.first_seq == 10, result.summary
    assert "pruned: seq 5-9 removed (audit.prune record 12)" in result.summary


async def test_a_forged_prune_record_does_not_excuse_missing_records(tmp_path: Path) -> None:
    clock = Clock()
    async with await AuditLog.open(tmp_path, clock=clock) as log:
        await fill(log, 6)
        await log.prune(ACTOR, before=clock.now - timedelta(microseconds=1500))  # removes 1-4
    with db(tmp_path) as conn:
        conn.execute("DELETE FROM records WHERE seq = 5")  # and the attacker takes one more
    result = verify(tmp_path)
    assert not result.ok and "seq 1-5 are missing and no audit.prune record accounts for them" in result.reason
