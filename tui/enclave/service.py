"""``enclave service install``: enclaved as a systemd service, hardened by default.

The unit is written from the daemon's config: with neither ``[http] listen`` nor
``[[engines]]`` enclaved needs no network, so the unit gives it none (``PrivateNetwork=yes``,
``AF_UNIX`` only); with either, ``AF_INET``/``AF_INET6`` are allowed and the network stays.
A model with ``n_gpu_layers`` keeps the devices (GPU offload opens ``/dev/nvidia*``,
``/dev/dri``). The units in ``packaging/systemd/`` are this module's output for a config with
none of these (``tests/ops/test_service.py`` checks that they agree).

The config is read here as plain TOML, not through the daemon (the client never imports it);
enclaved checks it when it starts.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from enclave.client import ClientError

UNIT_NAME = "enclaved.service"
SYSTEM_UNIT_DIR = Path("/etc/systemd/system")
SYSTEM_CONFIG = Path("/etc/enclave/enclave.toml")  # ConfigurationDirectory=enclave
SYSTEM_USER = "enclave"
HOME_FOLDERS = (Path("/home"), Path("/root"), Path("/run/user"))  # hidden from a system unit by ProtectHome


@dataclass(frozen=True)
class Needs:
    """What the config asks of the sandbox."""

    network: bool = False  # [http] listen or [[engines]]: TCP
    devices: bool = False  # a model offloads layers to a GPU
    writable: tuple[Path, ...] = ()  # folders of audit checkpoint copies


def read_needs(config: Path | None) -> Needs:
    if config is None:
        return Needs()
    try:
        raw = tomllib.loads(config.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ClientError(f"config file {config} does not exist; create it or drop --config") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ClientError(f"config file {config} cannot be read as TOML ({exc}); fix it first") from None
    http = raw.get("http")
    listen = isinstance(http, dict) and bool(http.get("listen"))
    engines = bool(raw.get("engines"))
    models = _list(raw.get("models"))
    gpu = any(isinstance(m, dict) and int(m.get("n_gpu_layers", 0) or 0) != 0 for m in models)
    audit = raw.get("audit")
    copies = _list(audit.get("checkpoint_copies")) if isinstance(audit, dict) else []
    writable = tuple(dict.fromkeys((config.parent / str(c)).expanduser().resolve().parent for c in copies))
    return Needs(network=listen or engines, devices=gpu, writable=writable)


def _list(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def _literal(text: str) -> str:
    """A path as one word of a unit file: ``%`` doubled (else a specifier), quoted when it has
    a space, a quote or a backslash."""
    text = text.replace("%", "%%")
    if any(c.isspace() or c in "\"'\\" for c in text):
        text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def _in_home(path: Path, home: Path) -> str:
    """``path`` with the home folder written as systemd's ``%h`` (user units)."""
    try:
        rest = _literal(str(path.relative_to(home)))
    except ValueError:
        return _literal(str(path))
    return f'"%h/{rest[1:]}' if rest.startswith('"') else f"%h/{rest}"


def render_unit(
    *, user: bool, enclaved: Path, config: Path | None, needs: Needs, data_dir: Path | None = None, home: Path | None = None
) -> str:
    """The unit file's text. ``user``: a unit for ``systemctl --user`` (its data folder in the
    home folder, which is otherwise read-only to it); else a system unit run as ``enclave``."""
    home = home or Path.home()
    if user:
        data = _in_home(data_dir or default_data_dir(), home)
        args = [_literal(str(enclaved)), *(["--config", _in_home(config, home)] if config else []), "--data", data]
        writable = [data, *(_in_home(p, home) for p in needs.writable)]
    else:
        data = "%S/enclave"  # StateDirectory=enclave: /var/lib/enclave
        args = [_literal(str(enclaved)), "--config", _literal(str(config or SYSTEM_CONFIG)), "--data", data]
        writable = [_literal(str(p)) for p in needs.writable]
    args += ["--socket", "%t/enclave/enclaved.sock"]  # RuntimeDirectory=enclave: /run/enclave, or $XDG_RUNTIME_DIR/enclave
    how = "--user" if user else "--system"
    lines = [
        f"# enclaved as a systemd service: written by `enclave service install {how}` (packaging/systemd in the source)",
        "[Unit]",
        "Description=enclave inference daemon (enclaved)",
        "",
        "[Service]",
        "Type=notify",
        f"ExecStart={' '.join(args)}",
        "Restart=on-failure",
        "RestartPreventExitStatus=2",  # a config or audit-log error: restarting cannot fix it
        "TimeoutStopSec=60",
        "# WatchdogSec=30s  (enclaved then pings systemd at half the interval from its event loop)",
    ]
    if not user:
        lines += ["User=enclave", "StateDirectory=enclave", "StateDirectoryMode=0700", "ConfigurationDirectory=enclave"]
        lines += ["WorkingDirectory=%S/enclave"]
    else:
        lines += ["WorkingDirectory=%h"]  # where a relative models folder (./models) is
    lines += ["RuntimeDirectory=enclave", "RuntimeDirectoryMode=0700", ""]
    lines += [
        "# Hardening. Not MemoryDenyWriteExecute: it forbids memory both writable and executable,",
        "# which libffi may need for a ctypes callback's closure, and llama.cpp's log callback",
        "# (llama_log_set, a ctypes callback) is one: loading a model could fail or crash.",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=read-only" if user else "ProtectHome=yes",
        "PrivateTmp=yes",
    ]
    if needs.devices:
        lines.append("# no PrivateDevices: a model offloads layers to a GPU ([[models]] n_gpu_layers)")
    else:
        lines.append("PrivateDevices=yes")
    if needs.network:
        lines += ["# network allowed: the config has [http] listen or [[engines]]", "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6"]
    else:
        lines += [
            "# no network: the config has no [http] listen and no [[engines]]",
            "RestrictAddressFamilies=AF_UNIX",
            "PrivateNetwork=yes",
        ]
    lines += [
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectControlGroups=yes",
        "RestrictNamespaces=yes",
        "RestrictRealtime=yes",
        "RestrictSUIDSGID=yes",
        "LockPersonality=yes",
        "# no core files: a core would hold prompts and the data key",
        "LimitCORE=0",
        "UMask=0077",
    ]
    lines += [f"ReadWritePaths={p}" for p in writable]
    lines += ["", "[Install]", "WantedBy=default.target" if user else "WantedBy=multi-user.target"]
    return "\n".join(lines) + "\n"


def default_data_dir() -> Path:
    """The daemon's default data folder (as enclaved resolves it)."""
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "enclave"


def _data_dir(config: Path | None) -> Path:
    if config is not None:
        raw = tomllib.loads(config.read_text(encoding="utf-8"))
        if isinstance(raw.get("data_dir"), str):
            return (config.parent / raw["data_dir"]).expanduser().resolve()
    return default_data_dir()


def unit_path(user: bool) -> Path:
    if not user:
        return SYSTEM_UNIT_DIR / UNIT_NAME
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "systemd" / "user" / UNIT_NAME


def find_enclaved() -> Path:
    """The enclaved beside this Python (the same installation), else on PATH."""
    beside = Path(sys.executable).with_name("enclaved")
    found = beside if beside.is_file() else Path(shutil.which("enclaved") or "")
    if not found.name or not found.is_file():
        raise ClientError("no enclaved found beside this enclave or on PATH; install enclave (pip install enclave) first")
    return found.absolute()


def _under_home(path: Path) -> bool:
    return any(path == h or h in path.parents for h in HOME_FOLDERS)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = sub.add_parser("service", help="run enclaved as a systemd service")
    actions = s.add_subparsers(dest="service_action", metavar="ACTION", required=True)
    i = actions.add_parser("install", help="write enclaved.service (hardened; no network unless the config needs it)")
    mode = i.add_mutually_exclusive_group()
    mode.add_argument("--user", action="store_true", help="a unit for systemctl --user (default)")
    mode.add_argument("--system", action="store_true", help="a system unit run as the user enclave (needs root)")
    i.add_argument("--config", dest="daemon_config", type=Path, metavar="FILE", help="the daemon's config (default: $ENCLAVE_CONFIG)")
    i.add_argument("--unit-dir", type=Path, metavar="DIR", help="write the unit into DIR (for packages) instead of systemd's folder")
    i.add_argument("--force", action="store_true", help="replace an existing unit that differs")


def cmd_service(args: argparse.Namespace) -> int:
    user = not args.system
    config = args.daemon_config or (Path(os.environ["ENCLAVE_CONFIG"]) if os.environ.get("ENCLAVE_CONFIG") else None)
    config = config.expanduser().absolute() if config else None
    needs = read_needs(config)
    enclaved = find_enclaved()
    if not user:
        for what, path in (("enclaved", enclaved), ("the config", config)):
            if path is not None and _under_home(path):
                print(
                    f"enclave: warning: {what} is at {path}, in a home folder the system unit cannot see (ProtectHome=yes); "
                    "install enclave and its config elsewhere (e.g. /opt/enclave, /etc/enclave) or use --user",
                    file=sys.stderr,
                )
    text = render_unit(user=user, enclaved=enclaved, config=config, needs=needs, data_dir=_data_dir(config) if user else None)
    path = (args.unit_dir / UNIT_NAME) if args.unit_dir else unit_path(user)
    old = path.read_text(encoding="utf-8") if path.is_file() else None
    if old is not None and old != text and not args.force:
        raise ClientError(f"{path} exists and differs from the unit this would write; pass --force to replace it")
    if old != text:
        _write(path, text)
        if user:  # the data folder must exist: the unit makes only it writable in the home folder
            _data_dir(config).mkdir(parents=True, exist_ok=True, mode=0o700)
    print(f"{'wrote' if old != text else 'unchanged:'} {path} ({'network allowed' if needs.network else 'no network'})")
    print("enable and start it with:")
    for line in _next_steps(user, config):
        print(f"  {line}")
    return 0


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.chmod(tmp, 0o644)  # systemd reads it; it holds no secret
    os.replace(tmp, path)


def _next_steps(user: bool, config: Path | None) -> list[str]:
    if user:
        return [
            "systemctl --user daemon-reload",
            "systemctl --user enable --now enclaved",
            "loginctl enable-linger $USER   # keep it running after you log out",
        ]
    steps: list[str] = []
    if not _user_exists(SYSTEM_USER):
        steps.append("useradd --system --home-dir /var/lib/enclave --shell /usr/sbin/nologin enclave")
    if config is None and not SYSTEM_CONFIG.exists():
        steps.append(f"mkdir -p {SYSTEM_CONFIG.parent} && editor {SYSTEM_CONFIG}   # models_dirs, agents: see the README")
    steps += [
        "systemctl daemon-reload",
        "systemctl enable --now enclaved",
        "sudo -u enclave enclave --socket /run/enclave/enclaved.sock status   # clients run as enclave",
    ]
    return steps


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False
