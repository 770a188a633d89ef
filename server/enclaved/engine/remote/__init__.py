"""Remote engines: models served by another machine's inference server (vLLM, llama-server,
TGI, Ollama) over the OpenAI-compatible HTTP API, behind the same events as a local engine.

- ``settings``: an ``[[engines]]`` block as the daemon reads it (no HTTP client here);
- ``breaker``: the circuit breaker per (replica, model);
- ``sse``: a streamed chat completion, line by line;
- ``replica``: one URL of an engine, its HTTP client, health and figures;
- ``tokens``: a remote model's context, and counting its tokens when enclave has no tokenizer;
- ``counter``: asking the engine's own tokenize endpoint, with a cache;
- ``client``: the remote engine: picking a replica, deadlines, retries before the first token.

Only ``settings`` and ``tokens`` are imported when the daemon starts. ``client`` (and with it aiohttp) is
imported only when an ``[[engines]]`` block exists, so a daemon without one loads no HTTP
client and opens no network socket.
"""
