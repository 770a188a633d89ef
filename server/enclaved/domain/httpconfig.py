"""``[http]``: the OpenAI-compatible HTTP listener, off unless the section is present.

```toml
[http]
socket = "default"          # a Unix socket beside the gRPC one, 0600 ("" for none)
listen = "127.0.0.1:8765"   # optional TCP; only loopback unless allow_remote = true
allow_remote = false
metrics = true              # GET /metrics
max_body_bytes = "1MiB"     # a bigger request body is refused with 413
```
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from enclaved.errors import ConfigError

DEFAULT_SOCKET = "default"
DEFAULT_MAX_BODY = 1 << 20
_KNOWN = ("socket", "listen", "allow_remote", "metrics", "max_body_bytes")


@dataclass(frozen=True)
class HttpSettings:
    socket: str = DEFAULT_SOCKET  # "default", a path, or "" for no Unix socket
    host: str = ""  # TCP host; "" = no TCP listener
    port: int = 0
    allow_remote: bool = False
    metrics: bool = True
    max_body_bytes: int = DEFAULT_MAX_BODY

    def socket_path(self, grpc_socket: Path) -> Path | None:
        """Where the HTTP Unix socket goes: ``enclaved-http.sock`` beside ``enclaved.sock``."""
        if not self.socket:
            return None
        if self.socket == DEFAULT_SOCKET:
            return grpc_socket.with_name(f"{grpc_socket.stem}-http{grpc_socket.suffix or '.sock'}")
        return Path(self.socket).expanduser()


def parse_http(table: Any, base: Path, parse_size: Callable[[int | str, str], int]) -> HttpSettings | None:
    """The ``[http]`` table, or None when absent; a bad value is a ConfigError naming the field."""
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ConfigError("[http] must be a table; write [http] on its own line with its settings below")
    unknown = sorted(set(table) - set(_KNOWN))
    if unknown:
        raise ConfigError(f"[http]: unknown setting {unknown[0]!r}; known: {', '.join(_KNOWN)}")
    for key in ("allow_remote", "metrics"):
        if key in table and not isinstance(table[key], bool):
            raise ConfigError(f"[http] {key}: write true or false")
    socket = table.get("socket", DEFAULT_SOCKET)
    if not isinstance(socket, str):
        raise ConfigError('[http] socket: write "default", a path, or "" for no Unix socket')
    if socket not in ("", DEFAULT_SOCKET):
        socket = str((base / socket).expanduser())
    allow_remote = table.get("allow_remote", False)
    host, port = "", 0
    if "listen" in table:
        host, port = _listen(table["listen"], allow_remote)
    if not socket and not host:
        raise ConfigError('[http]: neither socket nor listen is set, so nothing would serve; set socket = "default" or a listen address')
    return HttpSettings(
        socket=socket,
        host=host,
        port=port,
        allow_remote=allow_remote,
        metrics=table.get("metrics", True),
        max_body_bytes=_size(table.get("max_body_bytes", DEFAULT_MAX_BODY), parse_size),
    )


def _size(value: Any, parse_size: Callable[[int | str, str], int]) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ConfigError('[http] max_body_bytes: write a size like "1MiB"')
    size = parse_size(value, "[http] max_body_bytes")
    if size < 1024:
        raise ConfigError("[http] max_body_bytes: at least 1KiB, or no request fits")
    return size


def _listen(value: Any, allow_remote: bool) -> tuple[str, int]:
    if not isinstance(value, str) or ":" not in value:
        raise ConfigError('[http] listen: write HOST:PORT, like "127.0.0.1:8765" or "[::1]:8765"')
    host, _, port_text = value.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"[http] listen: port {port_text!r} is not a number from 1 to 65535")
    if host == "localhost":
        host = "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"[http] listen: {host!r} is not an IP address; write one, like 127.0.0.1") from None
    if not address.is_loopback and not allow_remote:
        raise ConfigError(
            f"[http] listen: {host} is not a loopback address, so other machines could connect; "
            "use 127.0.0.1, or set allow_remote = true if that is what you want"
        )
    return host, int(port_text)
