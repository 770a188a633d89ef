"""The process's own limits, set once at start: no core dumps (a core holds prompts and the
raw data key) and a file-descriptor budget that leaves the audit log room to write.

An idle client costs the daemon two descriptors (its handshake and its gRPC connection). The
soft ``RLIMIT_NOFILE`` is raised to the hard limit; ``RESERVE_FDS`` of it stay for the audit
log, model files and atomic writes, and the rest is split between gRPC connections and
handshakes, so a flood of clients is refused at the door instead of starving the writer into
EMFILE."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import resource
from dataclasses import dataclass

log = logging.getLogger("enclaved")

RESERVE_FDS = 64
_PR_SET_DUMPABLE = 4


@dataclass(frozen=True)
class FdBudget:
    limit: int  # the soft RLIMIT_NOFILE now in force
    connections: int  # gRPC connections at once (grpc.max_allowed_incoming_connections)
    peers: int  # handshakes at once
    peers_per_uid: int


def raise_fd_limit() -> FdBudget:
    """Raise the soft descriptor limit to the hard one and split what there is."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 16)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            log.warning("could not raise the open-file limit from %d to %d; clients are capped to fit %d", soft, target, soft)
    usable = max(soft - RESERVE_FDS, 8)
    peers = usable // 2
    return FdBudget(limit=soft, connections=usable - peers, peers=peers, peers_per_uid=max(1, peers * 3 // 4))


def forbid_core_dumps() -> None:
    """No core file, and no ptrace or /proc/PID/mem by other processes of the same user."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        log.warning("could not turn off core dumps (prctl PR_SET_DUMPABLE failed)")
