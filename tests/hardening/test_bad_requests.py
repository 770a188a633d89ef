"""Requests no client of ours would send: each gets INVALID_ARGUMENT with one line, never
UNKNOWN or INTERNAL, no traceback in the log, and the daemon goes on serving others."""

from __future__ import annotations

import math
from collections.abc import Callable

import grpc
import pytest

from enclave_contract.v1 import audit_pb2, audit_pb2_grpc, status_pb2
from tests.helpers import Daemon, chat

pytestmark = pytest.mark.timeout(120)


def code_of(call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value.code(), err.value.details()


@pytest.mark.parametrize("interval", [math.nan, math.inf, -1.0, 0.01, 1e9])
def test_a_status_interval_that_no_timer_can_take_is_refused(shared_daemon: Daemon, interval: float) -> None:
    d = shared_daemon
    stubs = d.stubs()
    code, details = code_of(lambda: list(stubs.status.Status(status_pb2.StatusRequest(interval_seconds=interval), timeout=10)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "between 0.1 and 3600" in details
    # another client's stream still ticks
    stream = stubs.status.Status(status_pb2.StatusRequest(interval_seconds=0.1), timeout=30)
    assert len([snap for snap, _ in zip(stream, range(3), strict=False)]) == 3
    stream.cancel()


@pytest.mark.parametrize(
    ("method", "raw"),
    [
        ("/enclave.v1.Models/ListModels", bytes.fromhex("0a056162")),
        ("/enclave.v1.Chat/Chat", b"\xff\xff\xff"),
        ("/enclave.v1.Audit/Export", b"\x0a"),
    ],
)
def test_bytes_that_are_not_the_message_are_invalid_argument(shared_daemon: Daemon, method: str, raw: bytes) -> None:
    d = shared_daemon
    ch = d.channel()
    if method.endswith(("Chat", "Export")):
        code, details = code_of(lambda: list(ch.unary_stream(method)(raw, timeout=10)))
    else:
        code, details = code_of(lambda: ch.unary_unary(method)(raw, timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "is not a valid enclave.v1." in details
    assert "Traceback" not in d.log


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_dates_at_the_ends_of_the_calendar_are_invalid_argument(shared_daemon: Daemon, when: str) -> None:
    d = shared_daemon
    audit = audit_pb2_grpc.AuditStub(d.channel())
    for query in (audit_pb2.AuditQuery(since=when), audit_pb2.AuditQuery(until=when)):
        code, details = code_of(lambda q=query: audit.Count(audit_pb2.AuditCountRequest(query=q), timeout=10))  # type: ignore[misc]
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "ISO 8601" in details
    assert chat(d.stubs(), "a1", "still here")[-1].HasField("finished")
    assert "Traceback" not in d.log
