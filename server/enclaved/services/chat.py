"""enclave.v1.Chat"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncGenerator
from contextlib import aclosing

import grpc

from enclave_contract.v1 import chat_pb2, chat_pb2_grpc
from enclaved.audit.recorder import ACTOR
from enclaved.domain.agents import AgentBook
from enclaved.domain.hub import EventHub
from enclaved.domain.turns import Turn, TurnManager
from enclaved.errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted
from enclaved.services import convert

# Every Watch stream gets every token of the agents it follows: a few thousand of them slow
# every chat down. One user cannot take them all.
MAX_WATCHES = 256
MAX_WATCHES_PER_UID = 64


class ChatService(chat_pb2_grpc.ChatServicer):
    def __init__(self, agents: AgentBook, turns: TurnManager, hub: EventHub) -> None:
        self.agents = agents
        self.turns = turns
        self.hub = hub
        self._watches: Counter[int | None] = Counter()  # open Watch streams per uid

    async def Chat(self, request: chat_pb2.ChatRequest, context: grpc.aio.ServicerContext) -> AsyncGenerator[chat_pb2.ChatEvent, None]:
        turn = self.turns.prepare(request.agent, request.message, request.detach)
        async with aclosing(self._follow([turn])) as events:
            async for event in events:
                yield event
                if event.HasField("error"):
                    await context.abort(_code(event.error.code), event.error.message)

    async def Broadcast(
        self, request: chat_pb2.BroadcastRequest, context: grpc.aio.ServicerContext
    ) -> AsyncGenerator[chat_pb2.ChatEvent, None]:
        names = list(dict.fromkeys(request.agents)) or [a.name for a in self.agents.all()]
        if not names:
            raise FailedPrecondition("there are no agents to broadcast to; create one first")
        # prepare() validates without starting anything: one unknown agent and none start
        turns = [self.turns.prepare(name, request.message, request.detach) for name in names]
        async with aclosing(self._follow(turns)) as events:
            async for event in events:
                yield event

    async def _follow(self, turns: list[Turn]) -> AsyncGenerator[chat_pb2.ChatEvent, None]:
        """Start the turns and stream their events until each has ended.

        If the client goes away first (the generator is closed), its turns are cancelled
        unless it asked to detach.
        """
        sub = self.hub.subscribe(turn_ids=[t.id for t in turns])
        for t in turns:
            await self.turns.launch(t)
        open_turns = {t.id for t in turns}
        try:
            async for ev in sub.events():
                yield convert.chat_event(ev)
                if ev.terminal:
                    open_turns.discard(ev.turn_id)
                    if not open_turns:
                        return
        finally:
            sub.close()
            for t in turns:
                if not t.detach and not t.ended:
                    self.turns.cancel(t)

    async def Watch(self, request: chat_pb2.WatchRequest, context: grpc.aio.ServicerContext) -> AsyncGenerator[chat_pb2.ChatEvent, None]:
        for name in request.agents:
            self.agents.get(name)
        uid = ACTOR.get().uid
        if sum(self._watches.values()) >= MAX_WATCHES:
            raise ResourceExhausted(f"{MAX_WATCHES} Watch streams are open, the most enclaved serves; close some clients")
        if self._watches[uid] >= MAX_WATCHES_PER_UID:
            raise ResourceExhausted(f"uid {uid} has {MAX_WATCHES_PER_UID} Watch streams open, the most one user may; close some clients")
        self._watches[uid] += 1
        sub = self.hub.subscribe(agents=list(request.agents) or None, replay_live=True)
        try:
            async for ev in sub.events():
                yield convert.chat_event(ev)
        finally:
            sub.close()
            self._watches[uid] -= 1

    async def Cancel(self, request: chat_pb2.CancelRequest, context: grpc.aio.ServicerContext) -> chat_pb2.CancelResponse:
        target = request.WhichOneof("target")
        if target == "turn_id":
            ids = self.turns.cancel_where(turn_id=request.turn_id)
            if not ids:
                raise NotFound(f"no turn {request.turn_id!r} in flight; it may have finished already")
        elif target == "agent":
            ids = self.turns.cancel_where(agent=request.agent)
        elif target == "all" and request.all:
            ids = self.turns.cancel_where()
        else:
            raise InvalidArgument("say what to cancel: a turn_id, an agent, or all")
        return chat_pb2.CancelResponse(cancelled_turn_ids=ids)


def _code(value: int) -> grpc.StatusCode:
    return next(c for c in grpc.StatusCode if c.value[0] == value)
