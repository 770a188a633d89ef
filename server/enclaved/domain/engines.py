"""``[[engines]]`` in the config file, and the ``model@engine`` names agents use.

A bad block stops the daemon at start with one line naming the engine and the field. The API
key is read from ``api_key_file`` here and never appears in a log line or an error.
"""

from __future__ import annotations

import re
import stat
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from enclave_contract import durations
from enclaved.engine.remote.settings import EngineSettings, Tls
from enclaved.errors import ConfigError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_TIMES = ("connect_timeout", "first_token_timeout", "idle_timeout", "total_timeout", "retry_time", "backoff", "health_interval")
_KNOWN = {"name", "kind", "urls", "api_key_file", "models", "max_concurrency", "retries", "breaker", "tls", "context", *_TIMES}


def split_model(name: str) -> tuple[str, str]:
    """``"llama@gpu"`` → ``("llama", "gpu")``; a bare name (a local GGUF) → ``(name, "")``."""
    model, _, engine = name.rpartition("@")
    return (model, engine) if model else (name, "")


def parse_duration(value: object, where: str) -> float:
    """``"2s"``, ``"500ms"``, ``"1m"`` or a number of seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        parsed = durations.seconds(str(value))
        if parsed is None:
            raise ConfigError(f'{where}: cannot read {value!r}; write it like "2s", "500ms" or "1m"')
        seconds = parsed
    if seconds <= 0:
        raise ConfigError(f"{where}: must be above 0, not {value!r}")
    return seconds


def _url(url: object, where: str) -> str:
    if not isinstance(url, str) or not url:
        raise ConfigError(f'{where}: each URL is a string like "http://10.0.0.5:8000/v1" or "unix:/run/vllm.sock"')
    if url.startswith("unix:"):
        if not url[5:].startswith("/"):
            raise ConfigError(f"{where}: {url!r}: a Unix socket URL takes an absolute path, like unix:/run/vllm.sock")
        return url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{where}: {url!r} is not an http(s) URL; write it like http://10.0.0.5:8000/v1")
    if parts.username or parts.password:
        raise ConfigError(f"{where}: a URL carries no credentials; put the key in api_key_file")
    return url.rstrip("/")


def _file(value: object, base: Path, where: str) -> Path:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: must be a file path")
    path = (base / value).expanduser()
    if not path.is_file():
        raise ConfigError(f"{where}: {path} is not a readable file")
    return path


def _api_key(value: object, base: Path, where: str) -> str:
    path = _file(value, base, where)
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{where}: {path} is readable by others; chmod 600 it")
    try:
        key = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        raise ConfigError(f"{where}: {path} cannot be read as text") from None
    if not key or any(c.isspace() or not c.isprintable() for c in key):
        raise ConfigError(f"{where}: {path} must hold the key alone, on one line")
    return key


def _tls(table: object, base: Path, where: str) -> Tls:
    if not isinstance(table, dict):
        raise ConfigError(f'{where}: write it like tls = {{ ca_file = "/etc/enclave/ca.pem" }}')
    unknown = sorted(set(table) - {"ca_file", "cert_file", "key_file"})
    if unknown:
        raise ConfigError(f"{where}: unknown setting {unknown[0]!r}; known: ca_file, cert_file, key_file")
    files = {k: _file(v, base, f"{where}.{k}") for k, v in table.items()}
    if ("cert_file" in files) != ("key_file" in files):
        raise ConfigError(f"{where}: cert_file and key_file go together (mutual TLS)")
    return Tls(**files)


def _whole(value: object, low: int, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ConfigError(f"{where}: must be a whole number >= {low}, not {value!r}")
    return value


def _engine(table: dict[str, Any], base: Path, i: int) -> EngineSettings:
    name = table.get("name")
    where = f"[[engines]] {name!r}" if isinstance(name, str) and name else f"[[engines]] #{i + 1}"
    unknown = sorted(set(table) - _KNOWN)
    if unknown:
        raise ConfigError(f"{where}: unknown setting {unknown[0]!r}; known: {', '.join(sorted(_KNOWN))}")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"{where}: name must be 1-64 letters, digits, '.', '_' or '-'")
    if table.get("kind", "openai") != "openai":
        raise ConfigError(f'{where}: kind {table["kind"]!r} is not known; the one kind is "openai" (the OpenAI-compatible API)')
    urls = table.get("urls")
    if not isinstance(urls, list) or not urls:
        raise ConfigError(f'{where}: urls must list at least one URL, like urls = ["http://10.0.0.5:8000/v1"]')
    models = table.get("models", [])
    if not isinstance(models, list) or not all(isinstance(m, str) and m and "@" not in m for m in models):
        raise ConfigError(f'{where}: models must be a list of model names, like models = ["mistral-7b"]')
    breaker = table.get("breaker", {})
    if not isinstance(breaker, dict) or set(breaker) - {"failures", "cooldown"}:
        raise ConfigError(f'{where}: breaker: write it like breaker = {{ failures = 5, cooldown = "60s" }}')
    values: dict[str, Any] = {t: parse_duration(table[t], f"{where} {t}") for t in _TIMES if t in table}
    return EngineSettings(
        name=name,
        urls=tuple(_url(u, f"{where} urls") for u in urls),
        models=tuple(models),
        api_key=_api_key(table["api_key_file"], base, f"{where} api_key_file") if "api_key_file" in table else "",
        max_concurrency=_whole(table.get("max_concurrency", 32), 1, f"{where} max_concurrency"),
        retries=_whole(table.get("retries", 3), 0, f"{where} retries"),
        context=_whole(table["context"], 64, f"{where} context") if "context" in table else 0,
        breaker_failures=_whole(breaker.get("failures", 5), 1, f"{where} breaker.failures"),
        breaker_cooldown=parse_duration(breaker.get("cooldown", 60), f"{where} breaker.cooldown"),
        tls=_tls(table["tls"], base, f"{where} tls") if "tls" in table else None,
        **values,
    )


def parse_engines(raw: object, base: Path) -> list[EngineSettings]:
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        raise ConfigError('[[engines]]: write each engine as its own [[engines]] table with name, kind = "openai" and urls')
    engines = [_engine(t, base, i) for i, t in enumerate(raw)]
    names = [e.name for e in engines]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"[[engines]]: {dupes[0]!r} is defined twice")
    return engines


def check_agent_models(agent: str, models: list[str], engines: list[EngineSettings]) -> None:
    """Every ``model@engine`` an agent names (its model and fallbacks) has its engine, and the
    model is among the engine's models when the block lists them."""
    by_name = {e.name: e for e in engines}
    for name in models:
        model, engine = split_model(name)
        if not engine:
            continue
        found = by_name.get(engine)
        if found is None:
            raise ConfigError(f"[[agents]] {agent!r}: {name!r} names engine {engine!r}, which no [[engines]] block defines")
        if found.models and model not in found.models:
            raise ConfigError(f"[[agents]] {agent!r}: engine {engine!r} does not list model {model!r}; add it to its models")
