"""The workbench's settings: a TOML file, typed and checked, with a one-line error for mistakes.

The file is ``--config``, else ``$ENCLAVE_CLIENT_CONFIG``, else
``$XDG_CONFIG_HOME/enclave/client.toml`` (``~/.config/enclave/client.toml``); a missing default
file means the defaults. Example::

    spawn = true                     # start enclaved in the background when none answers
    stream_hz = 5                    # screen updates a second for streamed text (1-30)
    daemon_args = ["--models", "/srv/models"]   # arguments for that enclaved

    [keys]                           # binding id = keys, comma-separated
    "pane.next" = "alt+right,ctrl+right"
    "turn.cancel_all" = "alt+x,f8"
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from enclave.keymap import keymap_problem


class SettingsError(Exception):
    """A settings file that cannot be used, as one line naming the problem and the fix."""


@dataclass(frozen=True)
class Settings:
    spawn: bool = True
    stream_hz: int = 5  # more is smoother and costs CPU: bench/bench_tui.py
    daemon_args: tuple[str, ...] = ()
    keys: dict[str, str] = field(default_factory=dict)


def default_settings_path() -> Path:
    explicit = os.environ.get("ENCLAVE_CLIENT_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "enclave" / "client.toml"


def load_settings(path: Path | None, binding_ids: dict[str, tuple[str, str]]) -> Settings:
    """Read ``path`` (or the default file, if it exists); key bindings must name known ids
    (``binding_ids``: id → where it answers and its default keys), real keys, each key once."""
    explicit = path is not None or "ENCLAVE_CLIENT_CONFIG" in os.environ
    path = path or default_settings_path()
    try:
        raw: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if explicit:
            raise SettingsError(f"settings file {path} does not exist; create it or point to another") from None
        return Settings()
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"settings file {path} is not valid TOML ({exc}); fix it") from None

    known = {"spawn", "stream_hz", "daemon_args", "keys"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise SettingsError(f"{path}: unknown setting {unknown[0]!r}; known: {', '.join(sorted(known))}")
    spawn = raw.get("spawn", True)
    if not isinstance(spawn, bool):
        raise SettingsError(f"{path}: spawn must be true or false")
    stream_hz = raw.get("stream_hz", 5)
    if not isinstance(stream_hz, int) or isinstance(stream_hz, bool) or not 1 <= stream_hz <= 30:
        raise SettingsError(f"{path}: stream_hz must be a whole number from 1 to 30")
    args = raw.get("daemon_args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise SettingsError(f'{path}: daemon_args must be a list of strings, like ["--models", "/srv/models"]')
    keys = raw.get("keys", {})
    if not isinstance(keys, dict):
        raise SettingsError(f'{path}: [keys] must be a table of binding id = "keys"')
    for binding_id, value in keys.items():
        if binding_id not in binding_ids:
            raise SettingsError(f"{path}: [keys] {binding_id!r} is not a binding id; known: {', '.join(sorted(binding_ids))}")
        if not isinstance(value, str) or not value.strip():
            raise SettingsError(f'{path}: [keys] {binding_id!r} needs keys as a string, like "alt+right,ctrl+n"')
    problem = keymap_problem(keys, binding_ids)
    if problem:
        raise SettingsError(f"{path}: {problem}")
    return Settings(spawn=spawn, stream_hz=stream_hz, daemon_args=tuple(args), keys=dict(keys))
