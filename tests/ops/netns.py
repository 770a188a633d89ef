"""What a process holds on the network, read from /proc: its socket descriptors
(``/proc/PID/fd`` → ``socket:[INODE]``) against the kernel's socket tables of its network
namespace (``/proc/PID/net/tcp``, ``tcp6``, ``udp``, ``udp6``, ``raw``, ``raw6``, ``unix``)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

INET_TABLES = ("tcp", "tcp6", "udp", "udp6", "udplite", "udplite6", "raw", "raw6")
_SOCKET = re.compile(r"^socket:\[(\d+)\]$")


def socket_inodes(pid: int) -> set[int]:
    """The inodes of every socket the process has open."""
    found = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            m = _SOCKET.match(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            continue  # closed meanwhile
        if m:
            found.add(int(m.group(1)))
    return found


def table_inodes(pid: int, table: str) -> set[int]:
    """The socket inodes in one of /proc/PID/net's tables (the inode column: 10th for the
    inet tables, 7th for unix)."""
    path = Path(f"/proc/{pid}/net/{table}")
    if not path.exists():
        return set()
    column = 6 if table == "unix" else 9
    lines = path.read_text().splitlines()[1:]
    return {int(parts[column]) for parts in (line.split() for line in lines) if len(parts) > column}


def inet_sockets(pid: int) -> dict[str, set[int]]:
    """The process's AF_INET and AF_INET6 sockets, by table; empty when it holds none."""
    mine = socket_inodes(pid)
    return {t: held for t in INET_TABLES if (held := mine & table_inodes(pid, t))}


def unix_sockets(pid: int) -> set[int]:
    return socket_inodes(pid) & table_inodes(pid, "unix")


def isolating_prefix() -> list[str] | None:
    """The command that runs a program in a new network namespace with no network: ``unshare
    -n`` as root (as CI runs), else ``unshare -rn`` (a user namespace); None where neither is
    permitted."""
    if shutil.which("unshare") is None:
        return None
    for prefix in (["unshare", "-n"], ["unshare", "-rn"]) if os.geteuid() == 0 else (["unshare", "-rn"],):
        if subprocess.run([*prefix, "true"], capture_output=True, timeout=30).returncode == 0:
            return [*prefix, "--"]
    return None
