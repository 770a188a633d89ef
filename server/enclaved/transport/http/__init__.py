"""The OpenAI-compatible HTTP API (``[http]`` in the config): the listener and its guard
(``server``), the endpoints (``openai``), request parameters (``params``), errors in
OpenAI's shape (``errors``) and Prometheus metrics (``metrics``)."""
