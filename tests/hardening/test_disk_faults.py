"""A full disk under the running daemon: it fails closed while the disk is full (DATA_LOSS,
health NOT_SERVING, one log line) and recovers by itself once there is room again, with the
audit chain intact. The data folder is a real 4 MiB tmpfs (CI runs as root)."""

from __future__ import annotations

import errno
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.helpers import BIN, MARKER, Daemon, chat, enclave, short_tmpdir, wait_for

pytestmark = pytest.mark.timeout(120)

CONFIG = """
[[models]]
name = "tiny"
n_ctx = 512
n_seq_max = 2
n_threads = 2

[[agents]]
name = "scribe"
model = "tiny"
max_tokens = 8
seed = 3
"""


@pytest.fixture
def small_disk() -> Iterator[Path]:
    home = short_tmpdir()
    data = home / "data"
    data.mkdir(mode=0o700)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(data)], capture_output=True)
    if r.returncode != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    try:
        yield home
    finally:
        subprocess.run(["umount", "-l", str(data)], check=True)


def fill_up(folder: Path) -> Path:
    filler = folder / "filler"
    try:
        with filler.open("wb") as f:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
    except OSError as exc:  # full; possibly before the first byte
        assert exc.errno == errno.ENOSPC
    return filler


def health(d: Daemon) -> int:
    stub = health_pb2_grpc.HealthStub(d.channel())
    return stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status


def test_a_full_disk_fails_closed_and_the_daemon_recovers_when_space_is_back(
    small_disk: Path, daemon_factory: Callable[..., Daemon]
) -> None:
    d = daemon_factory(CONFIG, home=small_disk)
    assert chat(d.stubs(), "scribe", "before")[-1].HasField("finished")
    filler = fill_up(small_disk / "data")

    with pytest.raises(grpc.RpcError) as err:
        chat(d.stubs(), "scribe", f"while full {MARKER}")
    assert err.value.code() == grpc.StatusCode.DATA_LOSS
    assert "\n" not in err.value.details() and "can write again" in err.value.details()
    wait_for(lambda: health(d) == health_pb2.HealthCheckResponse.NOT_SERVING)
    time.sleep(1.5)  # retries go on failing: still one line in the log
    assert d.log.count("requests are refused until it can write again") == 1

    filler.unlink()
    wait_for(lambda: health(d) == health_pb2.HealthCheckResponse.SERVING)
    assert chat(d.stubs(), "scribe", "after")[-1].HasField("finished")
    assert "writes succeed again" in d.log and MARKER not in d.log and "Traceback" not in d.log
    r = enclave(d, "audit", "verify")
    assert r.returncode == 0 and r.stdout.startswith("ok"), r.stdout + r.stderr
    assert d.stop() == 0
    assert os.listdir(small_disk / "data")
    # no temporary file left by the writes that failed (checked once the daemon stopped writing)
    assert not [p.name for p in (small_disk / "data").iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("medium", ["read-only", "full"])
def test_an_auditors_copy_verifies_offline_on_read_only_media_and_on_a_full_disk(
    medium: str, small_disk: Path, daemon_factory: Callable[..., Daemon]
) -> None:
    d = daemon_factory(CONFIG)
    assert chat(d.stubs(), "scribe", "for the record")[-1].HasField("finished")
    assert d.stop() == 0
    media = small_disk / "data"
    copy = media / "copy"
    r = subprocess.run(
        [str(BIN / "enclave"), "audit", "copy", "--data", str(d.home / "data"), "--to", str(copy)], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    if medium == "read-only":
        subprocess.run(["mount", "-o", "remount,ro", str(media)], check=True)
    else:
        fill_up(media)
    verify_key = str(d.home / "data" / "audit.verify")  # kept off the machine, brought along
    r = subprocess.run(
        [str(BIN / "enclave"), "audit", "verify", "--data", str(copy), "--verify-key", verify_key],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0 and r.stdout.startswith("ok"), r.stdout + r.stderr
