"""Fixtures: models made by the project's own model maker, and real daemons.

Every daemon here is the real ``enclaved`` in a subprocess, running the real llama.cpp on
generated GGUF files, listening on a real Unix socket. Each test folder's tests get that
folder's marker (``pytest -m unit`` is the quick run).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from enclave.modelmaker import SIZES, make_model, write_f16_model
from tests.helpers import SHARED_CONFIG, SHORT_TMPDIRS, Daemon, short_tmpdir, spawn_daemon, start_daemon, wait_ready

FOLDERS = ("unit", "engine", "engines", "daemon", "audit", "tui", "cli", "hardening", "http", "ops", "teams")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        folder = Path(str(item.fspath)).parent.name
        if folder in FOLDERS:
            item.add_marker(getattr(pytest.mark, folder))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The daemons' folders in /tmp go with a passing run; a failing one keeps them to read."""
    if exitstatus == 0:
        for folder in SHORT_TMPDIRS:
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny.gguf, small.gguf (same weights, small context in configs), eos.gguf (ends at
    once), plain.gguf (no chat template), broken.gguf (not GGUF) and alien.gguf (valid GGUF
    that llama.cpp cannot load)."""
    d = tmp_path_factory.mktemp("models")
    make_model(d / "tiny.gguf", "tiny")
    shutil.copy(d / "tiny.gguf", d / "small.gguf")
    make_model(d / "eos.gguf", "tiny", eos_logit=50.0)
    write_f16_model(d / "plain.gguf", SIZES["tiny"], chat_template=None)
    (d / "broken.gguf").write_bytes(b"this is not a gguf file" * 100)
    _write_unloadable(d / "alien.gguf")
    # Files as an operator leaves them: written a while ago. (A file that is not GGUF and was
    # written seconds ago is listed as still being written; tests/daemon/test_discovery.py.)
    an_hour_ago = time.time() - 3600
    for f in d.iterdir():
        os.utime(f, (an_hour_ago, an_hour_ago))
    return d


def _write_unloadable(path: Path) -> None:
    """A well-formed GGUF that llama.cpp refuses: an architecture it does not know."""
    import gguf
    import numpy as np

    w = gguf.GGUFWriter(str(path), "alienarch")
    w.add_tensor("token_embd.weight", np.zeros((8, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.fixture
def daemon_factory(model_dir: Path) -> Iterator[callable]:
    started: list[Daemon] = []

    def factory(config: str | None = None, *, home: Path | None = None, wait: bool = True, **kw: object) -> Daemon:
        d = spawn_daemon(home or short_tmpdir(), model_dir, config, **kw)  # type: ignore[arg-type]
        started.append(d)
        return wait_ready(d) if wait else d

    yield factory
    for d in started:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()


@pytest.fixture(scope="module")
def shared_daemon(model_dir: Path) -> Iterator[Daemon]:
    """One daemon for the tests that do not disturb each other."""
    d = start_daemon(short_tmpdir(), model_dir, SHARED_CONFIG)
    yield d
    d.stop()
