"""A whole session with no network at all, run by tests/ops/test_airgap.py inside a new network
namespace (``python -m tests.ops.airgap_session MODELS_DIR``): it checks that the namespace
has no network, then starts enclaved, chats with ``enclave chat``, attaches the workbench
(Textual's Pilot) and chats there, and checks that the daemon holds no inet socket. The
daemon runs with no new privileges and no core files, and llama.cpp's log callback (a ctypes
callback, which ``MemoryDenyWriteExecute`` would break) is seen to work. It exits
0 and prints ``air gap: ok`` when all of that worked, else fails with the reason."""

from __future__ import annotations

import asyncio
import errno
import shutil
import socket
import sys
from pathlib import Path

from enclave.app import EnclaveApp
from enclave_contract.v1 import agents_pb2
from tests.helpers import Daemon, enclave, short_tmpdir, start_daemon, wait_until
from tests.ops.netns import inet_sockets, unix_sockets

CONFIG = """
[[agents]]
name = "assistant"
model = "tiny"
max_tokens = 16
seed = 7
"""


def assert_no_network() -> None:
    interfaces = [line.split(":")[0].strip() for line in Path("/proc/net/dev").read_text().splitlines()[2:]]
    assert interfaces == ["lo"], f"this namespace has network interfaces: {interfaces}"
    try:
        socket.create_connection(("192.0.2.1", 80), timeout=5).close()  # TEST-NET-1: never routed
    except OSError as exc:
        assert exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH), exc
    else:
        raise AssertionError("a TCP connection left the namespace")


def last_reply(d: Daemon) -> str:
    return d.stubs().agents.GetTranscript(agents_pb2.GetTranscriptRequest(name="assistant"), timeout=10).messages[-1].content


async def workbench_turn(d: Daemon) -> str:
    app = EnclaveApp(d.socket, spawn=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.workbench.attached)
        pane = app.workbench.panes["assistant"]
        before = pane.turn_id
        await pilot.press(*"hello from the workbench", "enter")
        await wait_until(pilot, lambda: pane.turn_id != before and pane.state == "idle" and pane.reply_text != "", timeout=60)
        return pane.reply_text


def main(models: Path) -> int:
    assert_no_network()
    # as the units run it, as far as a process can set it without systemd: no new privileges,
    # no core files (the model load below goes through llama.cpp's ctypes log callback)
    wrap = ["setpriv", "--no-new-privs", "prlimit", "--core=0", "--"] if shutil.which("setpriv") and shutil.which("prlimit") else []
    home = short_tmpdir()
    d = start_daemon(home, models, CONFIG, wrap=wrap)
    try:
        failed = enclave(d, "load", "alien")  # llama.cpp refuses it and says why through its log callback
        assert failed.returncode == 1 and "enclaved.llama" in d.log, d.log[-2000:]
        r = enclave(d, "chat", "assistant", "hello from the command line")
        assert r.returncode == 0 and r.stdout.strip(), r.stderr
        assert r.stdout.strip() == last_reply(d).strip(), (r.stdout, last_reply(d))
        assert enclave(d, "status").returncode == 0
        reply = asyncio.run(workbench_turn(d))
        assert reply == last_reply(d), (reply, last_reply(d))
        assert not inet_sockets(d.proc.pid), inet_sockets(d.proc.pid)
        assert unix_sockets(d.proc.pid), "the daemon's Unix sockets should be seen (else this reads nothing)"
    finally:
        code = d.stop()
    assert code == 0, f"enclaved exited {code}:\n{d.log[-2000:]}"
    print("air gap: ok")
    shutil.rmtree(home, ignore_errors=True)  # kept, with the daemon's log, when a check fails
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
