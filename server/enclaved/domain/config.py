"""The daemon's settings: command line over config file (TOML) over defaults.

Every value of the file is checked here, before the daemon starts anything: a mistake is one
``ConfigError`` line naming the key, what it must be and how to write it, then the file."""

from __future__ import annotations

import os
import re
import reprlib
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from enclaved.audit import AuditConfig
from enclaved.audit.records import CONTENT_POLICIES
from enclaved.domain.agents import AgentParams
from enclaved.domain.agents import validate as validate_agent
from enclaved.domain.engines import check_agent_models, parse_engines
from enclaved.domain.httpconfig import HttpSettings, parse_http
from enclaved.domain.teams import Team, team_from_config
from enclaved.domain.teams import validate as validate_team
from enclaved.engine.remote.settings import EngineSettings
from enclaved.errors import ConfigError, EnclaveError, InvalidArgument


@dataclass(frozen=True)
class ModelSettings:
    """Per-model llama.cpp settings (``[[models]]``); ``n_ctx`` is per sequence (per agent)."""

    name: str = ""
    n_ctx: int = 4096
    n_seq_max: int = 4
    n_threads: int = 0  # 0 = every core
    n_gpu_layers: int = 0  # llama.cpp: a negative number = every layer
    n_batch: int = 512
    prefill_chunk: int = 256
    # RAM for the KV states of agents whose slot another agent took (restored when they speak);
    # bytes (the config's "256MiB" is read by load_config)
    state_cache: int = 256 << 20


@dataclass(frozen=True)
class AgentSettings:
    """An agent as written in ``[[agents]]``: name, model, system prompt and sampling."""

    name: str
    model: str = ""
    system: str = ""
    params: AgentParams = field(default_factory=AgentParams)
    fallbacks: tuple[str, ...] = ()  # models tried in order when the model cannot serve a turn


@dataclass(frozen=True)
class Config:
    models_dirs: list[Path] = field(default_factory=lambda: [Path("models")])
    data_dir: Path = field(default_factory=lambda: default_data_dir())
    memory_budget: int = 0  # bytes; 0 = no budget
    max_message_bytes: int = 64 * 1024
    models: list[ModelSettings] = field(default_factory=list)
    agents: list[AgentSettings] = field(default_factory=list)
    teams: list[Team] = field(default_factory=list)
    audit: AuditConfig = field(default_factory=AuditConfig)
    engines: list[EngineSettings] = field(default_factory=list)  # remote engines; none: no network at all
    http: HttpSettings | None = None  # [http]: the OpenAI-compatible listener; None = off

    def model_settings(self, name: str) -> ModelSettings:
        for m in self.models:
            if m.name == name:
                return m
        return ModelSettings(name=name)


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "enclave"


# --- what each value must be ------------------------------------------------------------------


@dataclass(frozen=True)
class _Want:
    """What a config value must be: ``words`` for the message, ``ok`` to check it."""

    words: str
    ok: Callable[[object], bool]


def _whole(low: int | None = None, note: str = "") -> _Want:
    """A whole number (never true or false, which TOML's readers give as ints) ``>= low``."""
    return _Want(
        f"a whole number{f' >= {low}' if low is not None else ''}{note}",
        lambda v: isinstance(v, int) and not isinstance(v, bool) and (low is None or v >= low),
    )


_TEXT = _Want("a string in quotes", lambda v: isinstance(v, str))
_FLAG = _Want("true or false", lambda v: isinstance(v, bool))
_TEXTS = _Want("a list of strings", lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v))
_TABLE = _Want("a table", lambda v: isinstance(v, dict))
_TABLES = _Want("a list of tables", lambda v: isinstance(v, list) and all(isinstance(x, dict) for x in v))

_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = 60  # a long prompt in the wrong place is not printed whole
_short = _repr.repr


def _check(table: Mapping[str, Any], prefix: str, spec: Mapping[str, tuple[_Want, str]]) -> None:
    """A ConfigError for the first key of ``table`` that ``spec`` (key → what it must be, and
    how to write it) refuses: ``{prefix}{key}: must be …, not …; write it like …``."""
    for key, (want, example) in spec.items():
        if key in table and not want.ok(table[key]):
            raise ConfigError(f"{prefix}{key}: must be {want.words}, not {_short(table[key])}; write it like {example}")


def _section(table: Mapping[str, Any], kind: str, i: int) -> str:
    """``[[models]] 'bench' `` for an entry with a usable name, else ``[[models]] #2 ``."""
    name = table.get("name")
    return f"[[{kind}]] {name!r} " if isinstance(name, str) and name else f"[[{kind}]] #{i + 1} "


_TOP = {
    "models_dirs": (_TEXTS, 'models_dirs = ["models", "/srv/models"]'),
    "data_dir": (_TEXT, 'data_dir = "/var/lib/enclave"'),
    "models": (_TABLES, '[[models]] on a line of its own, then name = "bench" and its settings below it'),
    "agents": (_TABLES, '[[agents]] on a line of its own, then name = "narrator" and its settings below it'),
    "teams": (_TABLES, '[[teams]] on a line of its own, then name = "story" and its settings below it'),
    "audit": (_TABLE, '[audit] on a line of its own, then content_policy = "full" and its other settings below it'),
}
_MODEL = {
    "name": (_TEXT, 'name = "bench"'),
    "n_ctx": (_whole(64), "n_ctx = 8192"),
    "n_seq_max": (_whole(1), "n_seq_max = 4"),
    "n_threads": (_whole(0, " (0 = every core)"), "n_threads = 2"),
    "n_gpu_layers": (_whole(note=" (0 = none, -1 = every layer)"), "n_gpu_layers = 0"),
    "n_batch": (_whole(1), "n_batch = 512"),
    "prefill_chunk": (_whole(1), "prefill_chunk = 256"),
    # state_cache: a size, read by parse_size
}
_AGENT = {  # the sampling settings are checked by the agents' own validate
    "name": (_TEXT, 'name = "narrator"'),
    "model": (_TEXT, 'model = "bench" or model = "mistral-7b@gpu"'),
    "system": (_TEXT, 'system = "You are the narrator."'),
}
_TEAM = {  # the rest is checked by team_from_config and the teams' own validate
    "name": (_TEXT, 'name = "story"'),
    "kind": (_TEXT, 'kind = "roundtable"'),
    "director": (_TEXT, 'director = "editor"'),
    "stop_text": (_TEXT, 'stop_text = "THE END"'),
}
_GUARD = {
    "agent": (_TEXT, 'guard = { agent = "screener" }'),
    "input": (_FLAG, 'guard = { agent = "screener", input = true }'),
    "output": (_TEXT, 'guard = { agent = "screener", output = "hold" }'),
    "on_block": (_TEXT, 'guard = { agent = "screener", on_block = "stop" }'),
}
_AUDIT = {
    "content_policy": (
        _Want("one of " + ", ".join(f'"{p}"' for p in CONTENT_POLICIES), lambda v: v in CONTENT_POLICIES),
        'content_policy = "digest"',
    ),
    "retention_days": (_whole(1), "retention_days = 2192"),
    "checkpoint_copies": (_TEXTS, 'checkpoint_copies = ["/mnt/backup/enclave"]'),
}


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(value: object, key: str = "memory_budget") -> int:
    """``8GiB``, ``512M``, ``1.5G`` or a number of bytes (0 or more)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ConfigError(f'{key}: must be 0 or more, not {value}; write it like "8GiB" or "512MiB"')
        return value
    m = _SIZE.match(str(value)) if isinstance(value, str | float) else None
    if not m:
        raise ConfigError(f'{key}: cannot read {_short(value)}; write it like "8GiB" or "512MiB"')
    unit = (m.group(2) or "").upper().rstrip("B").rstrip("I")
    return int(float(m.group(1)) * _UNITS[unit])


def _build(cls: type, table: dict[str, Any], where: str) -> Any:
    known = {f.name for f in fields(cls)} | ({"name", "model", "system", "fallbacks"} if cls is AgentParams else set())
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown setting {unknown[0]!r}; known: {', '.join(sorted(known))}")
    try:
        return cls(**table)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def load_config(path: Path | None, *, models_dirs: list[Path] | None = None, data_dir: Path | None = None) -> Config:
    """Read the TOML file (if any) and apply command-line overrides. A mistake in the file is a
    ConfigError of one line, ending with the file's path."""
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist; create it or drop --config") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    base = path.parent if path is not None else Path.cwd()
    in_file = f" (in {path})" if path is not None else ""
    try:
        return _config(raw, base, models_dirs, data_dir)
    except ConfigError as exc:
        raise ConfigError(f"{exc}{in_file}") from None
    except EnclaveError as exc:  # the teams' own checks, and a guard's timeout
        raise ConfigError(f"{exc.message}{in_file}") from None


def _config(raw: dict[str, Any], base: Path, models_dirs: list[Path] | None, data_dir: Path | None) -> Config:
    allowed = {"models_dirs", "data_dir", "memory_budget", "max_message_bytes", "models", "agents", "teams", "audit", "engines", "http"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(f"config: unknown setting {unknown[0]!r}; known: {', '.join(sorted(allowed))}")
    _check(raw, "", _TOP)
    memory_budget = parse_size(raw.get("memory_budget", 0), "memory_budget")
    max_message_bytes = parse_size(raw.get("max_message_bytes", 64 * 1024), "max_message_bytes")
    if max_message_bytes < 1:
        raise ConfigError("max_message_bytes: must be at least 1, or no message fits; write it like max_message_bytes = 65536")

    models = [_model(t, i) for i, t in enumerate(raw.get("models", []))]
    agents = [_agent(t, i) for i, t in enumerate(raw.get("agents", []))]
    teams = [_team(t, i) for i, t in enumerate(raw.get("teams", []))]
    for kind, items in (("models", models), ("agents", agents), ("teams", teams)):
        names = [x.name for x in items]
        if any(not n for n in names):
            raise ConfigError(f"[[{kind}]]: every entry needs a name")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(f"[[{kind}]]: {dupes[0]!r} is defined twice")
    # the agents' and teams' own checks, made again when the daemon defines them; whether a
    # team's agents exist is left to then, when those created at run time are known too
    for a in agents:
        try:
            validate_agent(a.name, a.system, a.params, max_message_bytes)
        except InvalidArgument as exc:
            raise ConfigError(f"[[agents]] {a.name!r}: {exc.message}") from None
    for t in teams:
        validate_team(t, lambda _: True)

    audit = _audit(raw.get("audit", {}), base)
    engines = parse_engines(raw.get("engines", []), base)
    for a in agents:
        check_agent_models(a.name, [a.model, *a.fallbacks], engines)

    dirs = models_dirs or [(base / d) for d in raw.get("models_dirs", [])] or [Path("models")]
    return Config(
        models_dirs=[d.expanduser().resolve() for d in dirs],
        data_dir=(data_dir or (base / raw["data_dir"] if "data_dir" in raw else default_data_dir())).expanduser(),
        memory_budget=memory_budget,
        max_message_bytes=max_message_bytes,
        models=models,
        agents=agents,
        teams=teams,
        audit=audit,
        engines=engines,
        http=parse_http(raw.get("http"), base, parse_size),
    )


def _model(table: dict[str, Any], i: int) -> ModelSettings:
    """A ``[[models]]`` entry, its sizes in bytes (``state_cache = "64MiB"``)."""
    where = _section(table, "models", i)
    _check(table, where, _MODEL)
    if "state_cache" in table:
        table = {**table, "state_cache": parse_size(table["state_cache"], f"{where}state_cache")}
    settings: ModelSettings = _build(ModelSettings, table, f"[[models]] #{i + 1}")
    return settings


def _agent(table: dict[str, Any], i: int) -> AgentSettings:
    _check(table, _section(table, "agents", i), _AGENT)
    where = f"[[agents]] #{i + 1}"
    own = {"name": "", **{k: table[k] for k in ("name", "model", "system") if k in table}}
    fallbacks = table.get("fallbacks", [])
    if not isinstance(fallbacks, list) or not all(isinstance(f, str) and f for f in fallbacks):
        raise ConfigError(f'{where}: fallbacks must be a list of model names, like ["mistral-7b@gpu", "smollm2"]')
    if table.get("model") in fallbacks or len(set(fallbacks)) < len(fallbacks):
        raise ConfigError(f"{where}: fallbacks must name each model once, and not the agent's own model")
    sampling = {k: v for k, v in table.items() if k not in own and k != "fallbacks"}
    if isinstance(sampling.get("stop"), list):
        sampling["stop"] = tuple(sampling["stop"])
    return AgentSettings(**own, params=_build(AgentParams, sampling, where), fallbacks=tuple(fallbacks))


def _team(table: dict[str, Any], i: int) -> Team:
    team = team_from_config(table, f"[[teams]] #{i + 1}")  # the unknown keys, members, instructions, the guard's shape
    where = _section(table, "teams", i)
    _check(table, where, _TEAM)
    _check(table.get("guard") or {}, f"{where}guard.", _GUARD)
    return team


def _audit(table: dict[str, Any], base: Path) -> AuditConfig:
    """``[audit]``: content_policy ("full", "digest", "none"), retention_days, checkpoint_copies."""
    known = {"content_policy", "retention_days", "checkpoint_copies"}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"[audit]: unknown setting {unknown[0]!r}; known: {', '.join(sorted(known))}")
    _check(table, "[audit] ", _AUDIT)
    copies = tuple((base / p).expanduser() for p in table.get("checkpoint_copies", []))
    try:
        return AuditConfig(
            content_policy=table.get("content_policy", "full"),
            retention_days=table.get("retention_days", AuditConfig.retention_days),
            checkpoint_copies=copies,
        )
    except EnclaveError as exc:
        raise ConfigError(f"[audit]: {exc.message}") from None
