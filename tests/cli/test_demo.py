"""`enclave demo` on the real models: four agents answer, from the project folder; elsewhere, one
line that says how to get the models; a private daemon that cannot start says why."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from enclave.client import ClientError
from enclave.demo import private_daemon
from tests.helpers import BIN, ROOT

pytestmark = pytest.mark.timeout(300)


def test_the_demo_answers_on_the_real_models() -> None:
    r = subprocess.run([str(BIN / "enclave"), "demo", "--no-tui"], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-500:]
    for agent in ("guide", "critic", "poet", "storyteller"):
        assert f"[{agent}] " in r.stdout, agent
    assert "smollm2  loaded" in r.stdout and "gemma3   loaded" in r.stdout
    assert "WARNING" not in r.stdout + r.stderr, "the daemon's log stays off the terminal (and the workbench's screen)"


def test_the_demo_without_its_models_says_how_to_get_them(tmp_path: Path) -> None:
    r = subprocess.run([str(BIN / "enclave"), "demo", "--no-tui"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "run `make models`" in r.stderr and "Traceback" not in r.stderr


def test_a_private_daemon_that_exits_at_start_up_says_why(tmp_path: Path) -> None:
    bad = '[[agents]]\nname = "a"\nmodel = "m"\ntemperature = "hot"\n'
    with (
        pytest.raises(ClientError, match=r"^the private enclaved exited at start-up: .*temperature"),
        private_daemon(tmp_path, tmp_path, bad),
    ):
        pass
