"""An ``[[engines]]`` block as the daemon uses it. Reading and checking the TOML is the
domain's (``domain/engines.py``); this module holds only the values, and no HTTP client."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Tls:
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None


@dataclass(frozen=True)
class EngineSettings:
    """One engine: its replicas (``urls``), the models it serves and how enclave treats it.

    Times are seconds. ``retries`` and ``retry_time`` cap the attempts made before the first
    token (count and time since the turn was sent); ``breaker_failures`` consecutive failures
    of one (replica, model) open its circuit for ``breaker_cooldown`` seconds.
    """

    name: str
    urls: tuple[str, ...]
    models: tuple[str, ...] = ()  # empty: what the engine lists at /v1/models
    kind: str = "openai"
    api_key: str = field(default="", repr=False)  # read from api_key_file; never logged
    max_concurrency: int = 32  # per replica
    connect_timeout: float = 2.0
    first_token_timeout: float = 30.0
    idle_timeout: float = 10.0
    total_timeout: float = 600.0
    retries: int = 3
    retry_time: float = 30.0
    backoff: float = 0.5  # the first retry's delay before jitter; it doubles with each
    breaker_failures: int = 5
    breaker_cooldown: float = 60.0
    health_interval: float = 10.0
    context: int = 0  # tokens the models' context holds; 0: what /v1/models says, if anything
    tls: Tls | None = None
