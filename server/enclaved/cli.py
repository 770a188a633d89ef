"""``enclaved``: run the daemon in the foreground."""

from __future__ import annotations

import argparse
import faulthandler
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from enclave_contract.paths import resolve_socket
from enclaved import __version__
from enclaved.domain.config import load_config
from enclaved.errors import ConfigError, EnclaveError


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="enclaved", description="The enclave inference daemon (runs in the foreground).")
    p.add_argument("--config", type=Path, help="TOML config file (default: $ENCLAVE_CONFIG if set)")
    p.add_argument(
        "--socket",
        help="Unix socket path (default: $ENCLAVE_SOCKET, $XDG_RUNTIME_DIR/enclave/enclaved.sock, ~/.local/state/enclave/enclaved.sock)",
    )
    p.add_argument("--models", type=Path, action="append", help="models folder; repeat for several (default: ./models)")
    p.add_argument("--data", type=Path, help="data folder (default: $XDG_DATA_HOME/enclave)")
    p.add_argument(
        "--allow-core-dumps",
        action="store_true",
        help="let a crash write a core file (off by default: a core holds prompts and the raw data key)",
    )
    p.add_argument(
        "--new-audit-log",
        action="store_true",
        help="start a new audit log where the old one was lost (its keys are moved aside; recorded as the first record)",
    )
    p.add_argument("--log-level", default=os.environ.get("ENCLAVE_LOG_LEVEL", "info"), choices=["debug", "info", "warning", "error"])
    p.add_argument("--version", action="version", version=f"enclaved {__version__}")
    return p.parse_args(argv)


class _ClientGoneFilter(logging.Filter):
    """gRPC logs a traceback when a client leaves just as a stream ends (it cannot send the
    final status). That is a client going away, not a fault: one debug line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "ExecuteBatchError" not in record.getMessage():
            return True
        logging.getLogger("enclaved.rpc").debug("a client left before its stream's final status was sent")
        return False


class RepeatFilter(logging.Filter):
    """A line logged over and over (a client retrying into a full house, asyncio's accept
    loop at EMFILE) is written at most ``burst`` times per ``window`` seconds; the next line
    after a quiet spell says how many were left out."""

    def __init__(self, burst: int = 10, window: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.burst, self.window, self._clock = burst, window, clock
        self._seen: dict[tuple[str, object], tuple[float, int, int]] = {}  # key -> (window start, written, dropped)

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.msg)
        now = self._clock()
        start, written, dropped = self._seen.get(key, (now, 0, 0))
        if now - start >= self.window:
            if dropped:
                record.msg = f"{record.msg} [{dropped} more like this left out]"
            start, written, dropped = now, 0, 0
        if written >= self.burst:
            self._seen[key] = (start, written, dropped + 1)
            return False
        self._seen[key] = (start, written + 1, dropped)
        if len(self._seen) > 10_000:  # messages with data in their template: forget, don't grow
            self._seen.clear()
        return True


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    faulthandler.enable()  # a crash in llama.cpp leaves the Python stack (names only, no data) in the log
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(RepeatFilter())
    logging.getLogger("grpc._cython.cygrpc").addFilter(_ClientGoneFilter())
    config_path = args.config or (Path(os.environ["ENCLAVE_CONFIG"]) if os.environ.get("ENCLAVE_CONFIG") else None)
    try:
        config = load_config(config_path, models_dirs=args.models, data_dir=args.data)
        if args.new_audit_log:
            config = replace(config, audit=replace(config.audit, new_log=True))
        from enclaved.daemon import run  # imports llama.cpp; after the cheap checks

        return run(config, resolve_socket(args.socket), allow_core_dumps=args.allow_core_dumps)
    except ConfigError as exc:
        print(f"enclaved: {exc}", file=sys.stderr)
        return 2
    except EnclaveError as exc:  # e.g. the audit log's key or files: refuse to serve, in one line
        print(f"enclaved: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
