"""``[http]``: off unless present, a Unix socket beside the gRPC one by default, TCP only on
loopback unless allow_remote, and one line naming the field for a bad value (also from the
real ``enclaved`` at start)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from enclaved.domain.config import load_config
from enclaved.errors import ConfigError


def _load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    (tmp_path / "c.toml").write_text(text)
    return load_config(tmp_path / "c.toml").http


def test_absent_means_off_and_present_means_the_default_socket(tmp_path: Path) -> None:
    assert _load(tmp_path, "") is None
    http = _load(tmp_path, "[http]\n")
    assert http is not None and http.host == "" and http.metrics
    assert http.socket_path(Path("/run/x/enclaved.sock")) == Path("/run/x/enclaved-http.sock")
    tcp = _load(tmp_path, '[http]\nsocket = ""\nlisten = "[::1]:8765"\nmetrics = false\nmax_body_bytes = "2MiB"\n')
    assert (tcp.host, tcp.port, tcp.metrics, tcp.max_body_bytes, tcp.socket_path(Path("/r/e.sock"))) == ("::1", 8765, False, 2 << 20, None)
    assert _load(tmp_path, '[http]\nsocket = "api.sock"\n').socket_path(Path("/r/e.sock")) == tmp_path / "api.sock"
    remote = _load(tmp_path, '[http]\nlisten = "0.0.0.0:80"\nallow_remote = true\n')
    assert (remote.host, remote.port) == ("0.0.0.0", 80)


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ('listen = "0.0.0.0:8765"', "listen: 0.0.0.0 is not a loopback address"),
        ('listen = "10.1.2.3:8765"', "allow_remote = true"),
        ('listen = "127.0.0.1"', "listen: write HOST:PORT"),
        ('listen = "127.0.0.1:99999"', "listen: port '99999'"),
        ('listen = "example.com:80"', "listen: 'example.com' is not an IP address"),
        ("metrics = 1", "metrics: write true or false"),
        ("socket = 3", "socket:"),
        ('socket = ""', "neither socket nor listen"),
        ("max_body_bytes = 10", "max_body_bytes: at least 1KiB"),
        ('max_body_bytes = "lots"', "max_body_bytes: cannot read"),
        ("port = 1", "unknown setting 'port'"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_field(tmp_path: Path, text: str, names: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, f"[http]\n{text}\n")
    assert names in str(caught.value) and "\n" not in str(caught.value)


def test_enclaved_refuses_to_start_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text('[http]\nlisten = "0.0.0.0:8765"\n')
    r = subprocess.run(
        [sys.executable, "-m", "enclaved.cli", "--config", str(tmp_path / "c.toml"), "--socket", str(tmp_path / "s.sock")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "[http] listen" in r.stderr, r.stderr
