"""Limits that keep one client from locking out the others: agents (the agent list must fit
one message), Watch streams per user and in all, text held for a slow watcher, and how fast
refused calls grow the audit log."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import grpc
import pytest

from enclave_contract.handshake import PEER_METADATA_KEY
from enclave_contract.v1 import agents_pb2, chat_pb2
from enclaved.domain.hub import SUBSCRIBER_TEXT_LIMIT, Delta, EventHub, TurnEvent
from enclaved.errors import ResourceExhausted
from enclaved.services.chat import MAX_WATCHES_PER_UID
from tests.helpers import SHARED_CONFIG, Daemon, chat, enclave, wait_for

pytestmark = pytest.mark.timeout(180)


def test_agents_are_capped_so_that_the_agent_list_always_fits(daemon_factory: Callable[..., Daemon]) -> None:
    d = daemon_factory(SHARED_CONFIG)
    stub = d.stubs().agents
    big = "x" * (64 * 1024 - 1)  # the most one system prompt may be
    refused = None
    for i in range(40):
        agent = agents_pb2.Agent(name=f"big{i}", model="tiny", system=big)
        try:
            stub.PutAgent(agents_pb2.PutAgentRequest(agent=agent), timeout=30)
        except grpc.RpcError as err:
            refused = err
            break
    assert refused is not None and refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "system prompts together" in refused.details()
    assert len(stub.ListAgents(agents_pb2.ListAgentsRequest(), timeout=30).agents) > 30
    assert d.stop() == 0
    again = daemon_factory(SHARED_CONFIG, home=d.home)
    assert enclave(again, "agents").returncode == 0  # the workbench and the CLI still attach


def test_watch_streams_are_capped_per_user(daemon_factory: Callable[..., Daemon]) -> None:
    d = daemon_factory(SHARED_CONFIG)
    stub = d.stubs().chat
    calls = [stub.Watch(chat_pb2.WatchRequest(), timeout=120) for _ in range(MAX_WATCHES_PER_UID + 6)]
    wait_for(lambda: sum(c.done() for c in calls) == 6)
    assert {c.code() for c in calls if c.done()} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    for c in calls:
        c.cancel()
    wait_for(lambda: all(c.done() for c in calls))
    watch = stub.Watch(chat_pb2.WatchRequest(agents=["a1"]), timeout=60)
    assert chat(d.stubs(), "a1", "anyone there?")[-1].HasField("finished")
    assert next(watch).HasField("started")
    watch.cancel()


async def test_a_watcher_that_does_not_read_is_dropped_by_the_text_it_holds() -> None:
    hub = EventHub()
    sub = hub.subscribe()
    chunk = "y" * 4096
    for _ in range(SUBSCRIBER_TEXT_LIMIT // len(chunk) + 1):  # far fewer events than the event limit
        hub.publish(TurnEvent("a1", "t1", Delta(chunk, 1)))
    with pytest.raises(ResourceExhausted, match="fell too far behind"):
        async for _ in sub.events():
            await asyncio.sleep(0)


def test_refused_calls_are_recorded_at_most_once_a_second_with_a_count(daemon_factory: Callable[..., Daemon]) -> None:
    d = daemon_factory(SHARED_CONFIG)
    stub = d.stubs().agents
    for _ in range(300):
        with pytest.raises(grpc.RpcError) as err:
            stub.ListAgents(agents_pb2.ListAgentsRequest(), metadata=[(PEER_METADATA_KEY, "made-up")], timeout=10)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    r = enclave(d, "audit", "export", "--format", "jsonl", "--action", "access.denied")
    denied = [json.loads(line) for line in r.stdout.splitlines()]
    assert 1 <= len(denied) < 30
    assert len(denied) + sum(rec["payload"]["refused_since_last_record"] for rec in denied) <= 300
