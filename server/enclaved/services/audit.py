"""enclave.v1.Audit: reading, exporting and verifying the audit log through the daemon."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Any

import grpc

from enclave_contract.v1 import audit_pb2, audit_pb2_grpc
from enclaved.audit import Filters
from enclaved.audit.recorder import ACTOR, Recorder
from enclaved.audit.records import Entry
from enclaved.audit.times import parse_time
from enclaved.domain.throttle import Throttle
from enclaved.errors import InvalidArgument

MAX_PAGE = 1000
READ_RECORD_SECONDS = 60.0


def _when(text: str, name: str) -> datetime | None:
    if not text:
        return None
    try:
        return parse_time(text)
    except ValueError:
        raise InvalidArgument(f"{name} must be a UTC time in ISO 8601, like 2026-11-22 or 2026-11-22T10:00:00Z") from None


def filters(q: audit_pb2.AuditQuery) -> Filters:
    return Filters(
        since=_when(q.since, "since"),
        until=_when(q.until, "until"),
        actor=q.actor or None,
        agent=q.agent or None,
        action=q.action or None,
        outcome=q.outcome or None,
    )


def record(d: dict[str, Any]) -> audit_pb2.AuditRecord:
    """A record as the audit core gives it (``AuditRecord.to_dict``), as a message."""
    actor = d["actor"]
    return audit_pb2.AuditRecord(
        seq=d["seq"],
        time=d["time"],
        action=d["action"],
        outcome=d["outcome"],
        hash=d["hash"],
        agent=d["agent"] or "",
        model=d["model"] or "",
        turn=d["turn"] or "",
        actor=audit_pb2.AuditActor(
            user=actor["user"] or "",
            auth=actor["auth"],
            uid=-1 if actor["uid"] is None else actor["uid"],
            pid=-1 if actor["pid"] is None else actor["pid"],
        ),
        payload_json=json.dumps(d["payload"], ensure_ascii=False, sort_keys=True),
    )


class AuditService(audit_pb2_grpc.AuditServicer):
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self._reads = Throttle(READ_RECORD_SECONDS)

    async def _record_read(self, via: str, query: Filters) -> None:
        """Reading decrypted records is itself recorded (``audit.read``): once per client and
        way of reading a minute, so that paging through the log does not grow it a record a page."""
        actor = ACTOR.get()
        left_out = self._reads.admit((actor.uid, actor.pid, via))
        if left_out is not None:
            payload = {"via": via, "filters": query.describe(), "reads_since_last_record": left_out}
            await self.recorder.record(Entry("audit.read", payload=payload))

    async def Count(self, request: audit_pb2.AuditCountRequest, context: grpc.aio.ServicerContext) -> audit_pb2.AuditCountResponse:
        return audit_pb2.AuditCountResponse(count=await self.recorder.log.count(filters(request.query)))

    async def Rows(self, request: audit_pb2.AuditRowsRequest, context: grpc.aio.ServicerContext) -> audit_pb2.AuditRowsResponse:
        if not 0 < request.limit <= MAX_PAGE:
            raise InvalidArgument(f"limit must be between 1 and {MAX_PAGE}")
        query = filters(request.query)
        await self._record_read("rows", query)
        rows = await self.recorder.log.rows(query, request.offset, request.limit)
        return audit_pb2.AuditRowsResponse(records=[record(r.to_dict()) for r in rows])

    async def Follow(
        self, request: audit_pb2.AuditFollowRequest, context: grpc.aio.ServicerContext
    ) -> AsyncGenerator[audit_pb2.AuditRecord, None]:
        query = filters(request.query)
        await self._record_read("follow", query)
        async for r in self.recorder.log.follow(query, last=max(request.last, 0)):
            yield record(r.to_dict())

    async def Export(
        self, request: audit_pb2.AuditExportRequest, context: grpc.aio.ServicerContext
    ) -> AsyncGenerator[audit_pb2.AuditRecord, None]:
        async for d in self.recorder.log.export(ACTOR.get(), filters(request.query)):
            yield record(d)

    async def Verify(self, request: audit_pb2.AuditVerifyRequest, context: grpc.aio.ServicerContext) -> audit_pb2.AuditVerifyResponse:
        r = await self.recorder.log.verify(ACTOR.get())
        return audit_pb2.AuditVerifyResponse(
            ok=r.ok,
            summary=r.summary,
            records=r.records,
            last_seq=r.last_seq or 0,
            checkpoint_seq=r.checkpoint_seq or 0,
            bad_seq=r.bad_seq or 0,
        )

    async def RotateKey(
        self, request: audit_pb2.AuditRotateKeyRequest, context: grpc.aio.ServicerContext
    ) -> audit_pb2.AuditRotateKeyResponse:
        return audit_pb2.AuditRotateKeyResponse(key_id=await self.recorder.log.rotate_key(ACTOR.get()))
