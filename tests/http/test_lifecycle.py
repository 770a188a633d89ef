"""Stopping: a stream in flight ends with an error object as its last data line, health says
503 while the daemon stops, and the HTTP socket is gone afterwards. Without ``[http]`` nothing
HTTP is started at all."""

from __future__ import annotations

import json
import signal
import socket
import threading

import httpx
import pytest

from tests.helpers import REAL_MODELS, enclave, short_tmpdir, spawn_daemon, start_daemon, wait_for
from tests.http.conftest import start_http_daemon

pytestmark = pytest.mark.timeout(300)


def test_stopping_ends_a_stream_with_an_error_and_health_turns_503() -> None:
    http = start_http_daemon()
    statuses: list[int] = []
    started = threading.Event()

    late: list = []

    def poll_health() -> None:
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(http.uds)), base_url="http://enclave", timeout=5) as client:
            started.set()
            while True:
                try:
                    statuses.append(client.get("/health").status_code)
                    if statuses[-1] == 503 and not late:
                        r = client.get("/v1/models", headers={"Authorization": f"Bearer {http.key}"})
                        late.extend([r.status_code, r.json()])
                except httpx.TransportError:
                    return

    body = {"model": "smollm2", "messages": [{"role": "user", "content": "Write a long story."}], "max_tokens": 600, "stream": True}
    with http.raw() as client, client.stream("POST", "/v1/chat/completions", json=body) as r:
        lines = r.iter_lines()
        next(line for line in lines if line.startswith("data:"))
        poller = threading.Thread(target=poll_health)
        poller.start()
        started.wait(10)
        http.daemon.proc.send_signal(signal.SIGTERM)
        rest = [line for line in lines if line.startswith("data:")]
    poller.join(30)
    assert http.daemon.proc.wait(30) == 0
    last = json.loads(rest[-1].removeprefix("data: "))
    assert last["error"]["type"] == "service_unavailable_error" and "shutting down" in last["error"]["message"]
    assert "data: [DONE]" not in rest
    assert 503 in statuses, statuses
    assert statuses == sorted(statuses), "once stopping, never serving again"
    assert late and late[0] == 503 and late[1]["error"]["code"] == "unavailable", "a request after the stop began is refused"
    assert not http.uds.exists()


def test_without_an_http_section_nothing_http_starts() -> None:
    d = start_daemon(short_tmpdir(), REAL_MODELS, "")
    try:
        assert sorted(p.name for p in d.socket.parent.iterdir() if p.is_socket()) == ["enclaved.sock", "enclaved.sock.peer"]
        assert "HTTP" not in d.log
    finally:
        assert d.stop() == 0


def test_a_port_in_use_stops_the_start_in_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        d = spawn_daemon(short_tmpdir(), REAL_MODELS, f'[http]\nlisten = "127.0.0.1:{port}"\n')
        assert d.proc.wait(60) == 2
    assert f"[http] listen: cannot listen on 127.0.0.1:{port}" in d.log and "Traceback" not in d.log
    assert not [p for p in d.socket.parent.iterdir() if p.is_socket()], "nothing left listening"


def test_a_socket_path_taken_by_a_file_stops_the_start_in_one_line() -> None:
    home = short_tmpdir()
    (home / "taken").write_text("not a socket")
    d = spawn_daemon(home, REAL_MODELS, '[http]\nsocket = "taken"\n')
    assert d.proc.wait(60) == 2
    assert "[http] socket: cannot listen on" in d.log and "Traceback" not in d.log
    assert (home / "taken").read_text() == "not a socket"


def test_metrics_off_is_a_404_and_the_socket_can_be_the_only_listener() -> None:
    d = start_daemon(short_tmpdir(), REAL_MODELS, "[http]\nmetrics = false\n")
    try:
        key = enclave(d, "keys", "create", "ops").stdout.strip()
        uds = d.socket.with_name("enclaved-http.sock")
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(uds)), base_url="http://enclave", timeout=30) as client:
            assert client.get("/health").status_code == 200
            r = client.get("/metrics", headers={"Authorization": f"Bearer {key}"})
            assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    finally:
        assert d.stop() == 0


def test_health_is_503_while_the_daemon_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a passphrase the audit key takes a while to open (scrypt): long enough to ask."""
    monkeypatch.setenv("ENCLAVE_AUDIT_PASSPHRASE", "a passphrase for the test")
    home = short_tmpdir()
    d = spawn_daemon(home, REAL_MODELS, "[http]\n")
    uds = d.socket.with_name("enclaved-http.sock")
    statuses: list[int] = []
    others: list[int] = []
    try:
        wait_for(uds.exists, timeout=30)
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(uds)), base_url="http://enclave", timeout=30) as client:
            while not statuses or statuses[-1] != 200:
                r = client.get("/health")
                statuses.append(r.status_code)
                if r.status_code == 503:
                    assert "not serving yet" in r.json()["error"]["message"]
                    others.append(client.get("/v1/models").status_code)
        assert statuses == [503] * (len(statuses) - 1) + [200], statuses
        assert others[0] == 503 and set(others) <= {503, 401}, "nothing but health answers while starting (then: no key)"
    finally:
        assert d.stop() == 0
