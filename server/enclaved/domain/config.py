"""The daemon's settings: command line over config file (TOML) over defaults."""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from enclaved.audit import AuditConfig
from enclaved.domain.agents import AgentParams
from enclaved.domain.engines import check_agent_models, parse_engines
from enclaved.domain.httpconfig import HttpSettings, parse_http
from enclaved.domain.teams import Team, team_from_config
from enclaved.engine.remote.settings import EngineSettings
from enclaved.errors import ConfigError, EnclaveError


@dataclass(frozen=True)
class ModelSettings:
    """Per-model llama.cpp settings (``[[models]]``); ``n_ctx`` is per sequence (per agent)."""

    name: str = ""
    n_ctx: int = 4096
    n_seq_max: int = 4
    n_threads: int = 0  # 0 = every core
    n_gpu_layers: int = 0
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


def _agent(table: dict[str, Any], where: str) -> AgentSettings:
    own = {k: table[k] for k in ("name", "model", "system") if k in table}
    fallbacks = table.get("fallbacks", [])
    if not isinstance(fallbacks, list) or not all(isinstance(f, str) and f for f in fallbacks):
        raise ConfigError(f'{where}: fallbacks must be a list of model names, like ["mistral-7b@gpu", "smollm2"]')
    if table.get("model") in fallbacks or len(set(fallbacks)) < len(fallbacks):
        raise ConfigError(f"{where}: fallbacks must name each model once, and not the agent's own model")
    sampling = {k: v for k, v in table.items() if k not in own and k != "fallbacks"}
    if isinstance(sampling.get("stop"), list):
        sampling["stop"] = tuple(sampling["stop"])
    return AgentSettings(**own, params=_build(AgentParams, sampling, where), fallbacks=tuple(fallbacks))


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


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(value: int | str, key: str = "memory_budget") -> int:
    """``8GiB``, ``512M``, ``1.5G`` or a number of bytes."""
    if isinstance(value, int):
        return value
    m = _SIZE.match(str(value))
    if not m:
        raise ConfigError(f'{key}: cannot read {value!r}; write it like "8GiB" or "512MiB"')
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
    """Read the TOML file (if any) and apply command-line overrides."""
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist; create it or drop --config") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    base = path.parent if path is not None else Path.cwd()
    allowed = {"models_dirs", "data_dir", "memory_budget", "max_message_bytes", "models", "agents", "teams", "audit", "engines", "http"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(f"config: unknown setting {unknown[0]!r}; known: {', '.join(sorted(allowed))}")

    models = [_build(ModelSettings, _model_sizes(t), f"[[models]] #{i + 1}") for i, t in enumerate(raw.get("models", []))]
    agents = [_agent(t, f"[[agents]] #{i + 1}") for i, t in enumerate(raw.get("agents", []))]
    teams = [team_from_config(t, f"[[teams]] #{i + 1}") for i, t in enumerate(raw.get("teams", []))]
    for kind, items in (("models", models), ("agents", agents), ("teams", teams)):
        names = [x.name for x in items]
        if any(not n for n in names):
            raise ConfigError(f"[[{kind}]]: every entry needs a name")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(f"[[{kind}]]: {dupes[0]!r} is defined twice")
    for m in models:
        if m.n_ctx < 64 or m.n_seq_max < 1 or m.n_batch < 1 or m.prefill_chunk < 1:
            raise ConfigError(f"[[models]] {m.name!r}: n_ctx must be >= 64 and n_seq_max, n_batch, prefill_chunk >= 1")

    audit = _audit(raw.get("audit", {}), base)
    engines = parse_engines(raw.get("engines", []), base)
    for a in agents:
        check_agent_models(a.name, [a.model, *a.fallbacks], engines)

    dirs = models_dirs or [(base / d) for d in raw.get("models_dirs", [])] or [Path("models")]
    return Config(
        models_dirs=[d.expanduser().resolve() for d in dirs],
        data_dir=(data_dir or (base / raw["data_dir"] if "data_dir" in raw else default_data_dir())).expanduser(),
        memory_budget=parse_size(raw.get("memory_budget", 0)),
        max_message_bytes=int(raw.get("max_message_bytes", 64 * 1024)),
        models=models,
        agents=agents,
        teams=teams,
        audit=audit,
        engines=engines,
        http=parse_http(raw.get("http"), base, parse_size),
    )


def _model_sizes(table: dict[str, Any]) -> dict[str, Any]:
    """A ``[[models]]`` entry with its sizes in bytes (``state_cache = "64MiB"``)."""
    if "state_cache" not in table:
        return table
    return {**table, "state_cache": parse_size(table["state_cache"], f"[[models]] {table.get('name', '')!r} state_cache")}


def _audit(table: dict[str, Any], base: Path) -> AuditConfig:
    """``[audit]``: content_policy ("full", "digest", "none"), retention_days, checkpoint_copies."""
    known = {"content_policy", "retention_days", "checkpoint_copies"}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"[audit]: unknown setting {unknown[0]!r}; known: {', '.join(sorted(known))}")
    copies = tuple((base / p).expanduser() for p in table.get("checkpoint_copies", []))
    try:
        return AuditConfig(
            content_policy=table.get("content_policy", "full"),
            retention_days=int(table.get("retention_days", AuditConfig.retention_days)),
            checkpoint_copies=copies,
        )
    except (EnclaveError, TypeError, ValueError) as exc:
        raise ConfigError(f"[audit]: {getattr(exc, 'message', exc)}") from None
