"""The air gap: without [[engines]] the daemon opens no network socket at all (it serves its
Unix sockets only); with one, it connects to the configured URLs and nowhere else. Read from
the kernel: the daemon's descriptors (/proc/PID/fd) against its network tables (/proc/PID/net)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tests.engines.conftest import Servers
from tests.helpers import REAL_MODELS, Daemon, chat, short_tmpdir, spawn_daemon, start_daemon

TABLES = ("tcp", "tcp6", "udp", "udp6", "raw", "raw6")


def socket_inodes(pid: int) -> set[str]:
    found = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            found.add(target[8:-1])
    return found


def network_sockets(pid: int) -> list[tuple[str, str, int]]:
    """(table, inode, remote port) for each of the process's sockets in an IP table."""
    mine = socket_inodes(pid)
    out = []
    for table in TABLES:
        lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        for line in lines:
            cols = line.split()
            if cols[9] in mine:
                out.append((table, cols[9], int(cols[2].rsplit(":", 1)[1], 16)))
    return out


def test_without_engines_the_daemon_opens_no_network_socket() -> None:
    config = '[[agents]]\nname = "local"\nmodel = "smollm2"\nmax_tokens = 4\n\n[[models]]\nname = "smollm2"\nn_ctx = 512\nn_seq_max = 1\n'
    d: Daemon = start_daemon(short_tmpdir(), REAL_MODELS, config)
    try:
        assert chat(d.stubs(), "local", "Hi.")[-1].HasField("finished")
        assert socket_inodes(d.proc.pid)  # it has sockets: its Unix ones
        assert network_sockets(d.proc.pid) == []
        assert "enclaved.engines" not in d.log  # no engine, no probe
    finally:
        d.stop()


def test_with_engines_it_connects_only_to_the_configured_urls(servers: Servers) -> None:
    config = (
        f'[[engines]]\nname = "gpu"\nurls = ["{servers.tcp_url}"]\nmodels = ["smollm2"]\nhealth_interval = "200ms"\n\n'
        '[[agents]]\nname = "remote"\nmodel = "smollm2@gpu"\nmax_tokens = 4\n'
    )
    d = start_daemon(short_tmpdir(), REAL_MODELS, config)
    try:
        assert chat(d.stubs(), "remote", "Hi.")[-1].HasField("finished")
        seen: set[int] = set()  # remote ports, over a few health probes (every 200 ms)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            seen |= {port for _, _, port in network_sockets(d.proc.pid)}
            time.sleep(0.02)
        assert seen == {servers.tcp_port}
    finally:
        d.stop()


def test_a_bad_engine_block_stops_the_daemon_with_one_line_naming_the_field(tmp_path: Path) -> None:
    key = tmp_path / "gpu.key"
    key.write_text("sk-ZEBRA-7731-secret\n")
    key.chmod(0o600)
    config = f'[[engines]]\nname = "gpu"\nurls = ["http://10.0.0.5:8000/v1"]\napi_key_file = "{key}"\nidle_timeout = "forever"\n'
    home = short_tmpdir()
    d = spawn_daemon(home, REAL_MODELS, config)
    assert d.proc.wait(timeout=30) == 2
    lines = d.log.strip().splitlines()
    assert lines == [
        f'enclaved: [[engines]] \'gpu\' idle_timeout: cannot read \'forever\'; write it like "2s", "500ms" or "1m" (in {home / "enclave.toml"})'
    ]
