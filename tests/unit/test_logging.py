"""The daemon's log stays free of tracebacks for ordinary client behaviour."""

import logging

import pytest

from enclaved.cli import RepeatFilter, _ClientGoneFilter


def test_grpc_client_gone_traceback_becomes_one_debug_line(caplog: pytest.LogCaptureFixture) -> None:
    grpc_log = logging.getLogger("grpc._cython.cygrpc")
    grpc_log.addFilter(_ClientGoneFilter())
    try:
        with caplog.at_level(logging.DEBUG):
            try:
                raise RuntimeError('Failed "execute_batch"')
            except RuntimeError:
                # what grpc's aio server logs when a client leaves as its stream ends
                grpc_log.exception("ExecuteBatchError raised in core by servicer method [%s]", "/enclave.v1.Status/Status")
            grpc_log.error("a real gRPC problem")
    finally:
        grpc_log.filters.clear()
    messages = [(r.name, r.levelno, r.getMessage()) for r in caplog.records]
    assert ("enclaved.rpc", logging.DEBUG, "a client left before its stream's final status was sent") in messages
    assert ("grpc._cython.cygrpc", logging.ERROR, "a real gRPC problem") in messages
    assert not any("ExecuteBatchError" in m for _, _, m in messages)
    assert not any(r.exc_info for r in caplog.records)


def test_a_line_logged_over_and_over_is_written_a_few_times_then_counted() -> None:
    now = [0.0]
    f = RepeatFilter(burst=3, window=10.0, clock=lambda: now[0])

    def record(msg: str) -> logging.LogRecord:
        return logging.LogRecord("asyncio", logging.ERROR, __file__, 1, msg, None, None)

    flood = [record("socket.accept() out of system resource") for _ in range(1000)]
    assert sum(f.filter(r) for r in flood) == 3
    assert f.filter(record("another line"))  # other lines are not held back
    now[0] = 10.5
    after = record("socket.accept() out of system resource")
    assert f.filter(after) and after.getMessage().endswith("[997 more like this left out]")
