"""``enclave service install`` and the units in packaging/systemd: what is written where,
the sandbox the config asks for, and ``systemd-analyze verify`` on every unit."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from enclave.service import Needs, render_unit

ROOT = Path(__file__).resolve().parents[2]
PACKAGED = {
    ROOT / "packaging/systemd/enclaved.service": dict(user=False, enclaved=Path("/opt/enclave/bin/enclaved"), config=None),
    ROOT / "packaging/systemd/user/enclaved.service": dict(user=True, enclaved=Path("/usr/local/bin/enclaved"), config=None),
}
ENCLAVED = Path(sys.executable).with_name("enclaved")


def packaged_text(user: bool, enclaved: Path, config: Path | None) -> str:
    home = Path("/home/someone")  # the user unit's paths in the home folder are written %h/…
    return render_unit(user=user, enclaved=enclaved, config=config, needs=Needs(), data_dir=home / ".local/share/enclave", home=home)


def write_packaged() -> None:
    """Regenerate the packaged units: python -c 'from tests.ops.test_service import write_packaged; write_packaged()'"""
    for path, kw in PACKAGED.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(packaged_text(**kw))  # type: ignore[arg-type]


def install(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "ENCLAVE_CONFIG")}
    return subprocess.run(
        [sys.executable, "-m", "enclave.cli", "service", "install", *args],
        env={**clean, "HOME": str(home), **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def settings(unit: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in unit.splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            out.setdefault(key, []).append(value)
    return out


def verify(unit: Path, user: bool, tmp: Path) -> None:
    """``systemd-analyze verify`` (Debian's systemd package); it needs no running systemd."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    runtime = tmp / "runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "SYSTEMD_LOG_COLOR": "0"}
    cmd = ["systemd-analyze", *(["--user"] if user else []), "verify", str(unit)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and not r.stderr.strip() and not r.stdout.strip(), f"{unit}:\n{r.stdout}{r.stderr}"


# ---- the packaged units ----------------------------------------------------------------------


@pytest.mark.parametrize("path", list(PACKAGED), ids=["system", "user"])
def test_the_packaged_units_are_what_install_writes(path: Path) -> None:
    assert path.read_text() == packaged_text(**PACKAGED[path]), f"{path} is stale; run write_packaged() (see its docstring)"  # type: ignore[arg-type]


@pytest.mark.parametrize("path", list(PACKAGED), ids=["system", "user"])
def test_systemd_analyze_verify_passes_on_the_packaged_units(path: Path, tmp_path: Path) -> None:
    kw = PACKAGED[path]
    unit = tmp_path / "enclaved.service"  # the same unit, its enclaved one that exists here
    unit.write_text(path.read_text().replace(f"ExecStart={kw['enclaved']}", f"ExecStart={ENCLAVED}"))
    verify(unit, bool(kw["user"]), tmp_path)


@pytest.mark.parametrize("path", list(PACKAGED), ids=["system", "user"])
def test_the_packaged_units_are_hardened_and_offline(path: Path) -> None:
    s = settings(path.read_text())
    expected = {
        "Type": ["notify"],
        "NoNewPrivileges": ["yes"],
        "ProtectSystem": ["strict"],
        "PrivateTmp": ["yes"],
        "PrivateDevices": ["yes"],
        "RestrictAddressFamilies": ["AF_UNIX"],
        "PrivateNetwork": ["yes"],
        "LimitCORE": ["0"],
        "UMask": ["0077"],
        "RuntimeDirectory": ["enclave"],
    }
    for key, value in expected.items():
        assert s.get(key) == value, key
    assert "MemoryDenyWriteExecute" not in s  # breaks libffi callbacks: llama.cpp's log callback
    if PACKAGED[path]["user"]:
        assert s["ProtectHome"] == ["read-only"] and s["ReadWritePaths"] == ["%h/.local/share/enclave"]
    else:
        assert s["ProtectHome"] == ["yes"] and s["User"] == ["enclave"]
        for key in ("StateDirectory", "ConfigurationDirectory"):
            assert s[key] == ["enclave"], key
        assert "--config /etc/enclave/enclave.toml --data %S/enclave --socket %t/enclave/enclaved.sock" in s["ExecStart"][0]


# ---- enclave service install -----------------------------------------------------------------


def test_install_user_writes_the_unit_in_the_home_folder(tmp_path: Path) -> None:
    r = install(tmp_path, "--user")
    assert r.returncode == 0, r.stderr
    unit = tmp_path / ".config/systemd/user/enclaved.service"
    text = unit.read_text()
    assert f"ExecStart={ENCLAVED} --data %h/.local/share/enclave --socket %t/enclave/enclaved.sock" in text
    assert text == render_unit(
        user=True, enclaved=ENCLAVED, config=None, needs=Needs(), data_dir=tmp_path / ".local/share/enclave", home=tmp_path
    )
    assert (tmp_path / ".local/share/enclave").is_dir()  # ReadWritePaths needs it to exist
    assert "systemctl --user enable --now enclaved" in r.stdout
    verify(unit, True, tmp_path)
    again = install(tmp_path)  # --user is the default; the same unit again is no change
    assert again.returncode == 0 and "unchanged" in again.stdout


def test_install_honours_xdg_config_home_and_the_config(tmp_path: Path) -> None:
    config = tmp_path / "etc" / "enclave.toml"
    config.parent.mkdir()
    config.write_text('data_dir = "state"\n[audit]\ncheckpoint_copies = ["/var/tmp/enclave-copies/audit.checkpoint"]\n')
    r = install(tmp_path, "--config", str(config), env={"XDG_CONFIG_HOME": str(tmp_path / "xdg")})
    assert r.returncode == 0, r.stderr
    s = settings((tmp_path / "xdg/systemd/user/enclaved.service").read_text())
    assert "--config %h/etc/enclave.toml --data %h/etc/state" in s["ExecStart"][0]
    assert s["ReadWritePaths"] == ["%h/etc/state", "/var/tmp/enclave-copies"]


@pytest.mark.parametrize(
    "config, network, devices",
    [
        ('[http]\nlisten = "127.0.0.1:8765"\n', True, False),
        ('[http]\nsocket = "default"\n', False, False),  # the Unix socket only: still no network
        ('[[engines]]\nname = "lab"\nurl = "http://10.0.0.5:8080/v1"\n', True, False),
        ('[[models]]\nname = "big"\nn_gpu_layers = 99\n', False, True),
    ],
    ids=["http-listen", "http-socket-only", "engines", "gpu"],
)
def test_the_sandbox_follows_the_config(tmp_path: Path, config: str, network: bool, devices: bool) -> None:
    (tmp_path / "enclave.toml").write_text(config)
    r = install(tmp_path, "--system", "--config", str(tmp_path / "enclave.toml"), "--unit-dir", str(tmp_path / "units"))
    assert r.returncode == 0, r.stderr
    unit = tmp_path / "units/enclaved.service"
    s = settings(unit.read_text())
    assert s["RestrictAddressFamilies"] == (["AF_UNIX AF_INET AF_INET6"] if network else ["AF_UNIX"])
    assert ("PrivateNetwork" in s) is not network
    assert ("PrivateDevices" in s) is not devices
    assert ("network allowed" if network else "no network") in r.stdout
    verify(unit, False, tmp_path)


def test_install_refuses_to_replace_a_different_unit_without_force(tmp_path: Path) -> None:
    unit = tmp_path / ".config/systemd/user/enclaved.service"
    unit.parent.mkdir(parents=True)
    unit.write_text("[Service]\nExecStart=/bin/true\n")
    r = install(tmp_path, "--user")
    assert r.returncode == 1 and "--force" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert unit.read_text() == "[Service]\nExecStart=/bin/true\n"
    r = install(tmp_path, "--user", "--force")
    assert r.returncode == 0 and "Type=notify" in unit.read_text()


@pytest.mark.parametrize("content", [None, "not = [toml"])
def test_a_config_that_is_missing_or_not_toml_is_one_line(tmp_path: Path, content: str | None) -> None:
    config = tmp_path / "enclave.toml"
    if content is not None:
        config.write_text(content)
    r = install(tmp_path, "--config", str(config))
    assert r.returncode == 1 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert str(config) in r.stderr
    assert not (tmp_path / ".config/systemd/user/enclaved.service").exists()


def test_the_system_unit_runs_as_enclave_in_its_own_folders(tmp_path: Path) -> None:
    r = install(tmp_path, "--system", "--unit-dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "enclaved.service").read_text()
    assert re.search(r"^User=enclave$", text, re.M) and "WantedBy=multi-user.target" in text
    assert "systemctl enable --now enclaved" in r.stdout


def test_paths_with_spaces_and_percent_signs_stay_whole(tmp_path: Path) -> None:
    """A space would split ExecStart's arguments and ``%`` starts a systemd specifier."""
    folder = tmp_path / "my config"
    folder.mkdir()
    config = folder / "enclave 100%.toml"
    config.write_text('data_dir = "my data"\n[audit]\ncheckpoint_copies = ["/var/tmp/copies 50%/audit.checkpoint"]\n')
    r = install(tmp_path, "--config", str(config))
    assert r.returncode == 0, r.stderr
    unit = tmp_path / ".config/systemd/user/enclaved.service"
    s = settings(unit.read_text())
    assert '--config "%h/my config/enclave 100%%.toml" --data "%h/my config/my data"' in s["ExecStart"][0]
    assert s["ReadWritePaths"] == ['"%h/my config/my data"', '"/var/tmp/copies 50%%"']
    assert (folder / "my data").is_dir()
    verify(unit, True, tmp_path)
