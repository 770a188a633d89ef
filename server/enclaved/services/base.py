"""What every servicer shares: knowing who calls, so the audit log can say who acted."""

from __future__ import annotations

import grpc

from enclaved.audit.recorder import ACTOR, Recorder
from enclaved.audit.records import Entry
from enclaved.errors import EnclaveError
from enclaved.transport.peers import PeerRegistry


class Servicer:
    def __init__(self, recorder: Recorder, peers: PeerRegistry | None) -> None:
        self.recorder = recorder
        self.peers = peers

    async def identify(self, context: grpc.aio.ServicerContext, method: str) -> None:
        """Set ``ACTOR`` for this call from its peer credentials; a token that is not (or no
        longer) valid is recorded as access.denied and refused."""
        if self.peers is None:
            return
        try:
            ACTOR.set(self.peers.actor(context.invocation_metadata()))
        except EnclaveError as exc:
            denied = Entry("access.denied", outcome="denied", payload={"method": method, "reason": exc.message})
            await self.recorder.record(denied, getattr(exc, "actor", None))
            raise
