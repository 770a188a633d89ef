"""llama-cpp-python's own OpenAI-compatible server app (``llama_cpp.server.app.create_app``)
served on a Unix socket: its command line (``python -m llama_cpp.server``) takes only a host
and a port, so this runs the same app under uvicorn with ``uds=``.

Usage: python -m tests.engines.uds_server SOCKET MODEL_PATH ALIAS
"""

from __future__ import annotations

import sys

import uvicorn
from llama_cpp.server.app import create_app
from llama_cpp.server.settings import ModelSettings, ServerSettings


def main() -> None:
    socket, model, alias = sys.argv[1:4]
    settings = ModelSettings(model=model, model_alias=alias, n_ctx=512, n_threads=1, verbose=False)
    app = create_app(server_settings=ServerSettings(interrupt_requests=False), model_settings=[settings])
    uvicorn.run(app, uds=socket, log_level="info")


if __name__ == "__main__":
    main()
