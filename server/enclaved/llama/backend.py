"""llama.cpp's process-wide state: the backend, initialised once, and its log routed through
``logging``."""

from __future__ import annotations

import ctypes
import logging
import threading

import llama_cpp as L

log = logging.getLogger("enclaved.llama")

# ggml_log_level values (ggml.h); the bindings do not export them.
_GGML_LOG_WARN, _GGML_LOG_ERROR = 3, 4

_backend_lock = threading.Lock()
_backend_ready = False


@L.llama_log_callback
def _forward_llama_log(level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
    # llama.cpp reports model loading at INFO; only its warnings and errors reach our log.
    # It never logs prompt text.
    if level in (_GGML_LOG_WARN, _GGML_LOG_ERROR):
        message = text.decode("utf-8", "replace").strip()
        if message:
            log.log(logging.WARNING if level == _GGML_LOG_WARN else logging.ERROR, "%s", message)


def init_backend() -> None:
    """Initialise llama.cpp once per process and route its log through ``logging``."""
    global _backend_ready
    with _backend_lock:
        if not _backend_ready:
            L.llama_log_set(_forward_llama_log, ctypes.c_void_p(0))
            L.llama_backend_init()
            _backend_ready = True
